# The AWS deployment of the runtime: the S3 model registry the workbench promotes into, the
# `runtime` binary as Lambda functions on EventBridge Scheduler (sharded fan-out), alerting
# secrets, CloudWatch logs / dashboard / alarms, and optionally InfluxDB in a private VPC.
# Files: s3.tf, secrets.tf, lambda.tf, network.tf, influxdb.tf, cloudwatch.tf, outputs.tf.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "${var.project_name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  model_bucket = coalesce(var.model_bucket_name, "${local.name}-models-${local.account_id}")
  in_vpc       = var.influxdb_deployment != "external"

  # One Lambda function per concern; the runtime binary picks its work from RUNTIME_MODE and
  # from the scheduler's input ({"mode", "shard", "shards"}).
  functions = merge(
    {
      "anomaly-detector" = {
        mode        = "detect"
        schedule    = var.detection_schedule
        shards      = var.detection_shards
        concurrency = coalesce(var.reserved_concurrency, var.detection_shards + 1)
      }
    },
    var.enable_prediction ? {
      "predictor" = {
        mode        = "predict"
        schedule    = var.prediction_schedule
        shards      = 1
        concurrency = coalesce(var.reserved_concurrency, 2)
      }
    } : {},
  )

  # One schedule per (function, shard).
  schedules = merge([
    for fn, f in local.functions : {
      for shard in range(f.shards) : "${fn}-${shard}" => {
        function = fn
        input    = jsonencode({ mode = f.mode, shard = shard, shards = f.shards })
        schedule = f.schedule
      }
    }
  ]...)

  influxdb_url = (
    var.influxdb_deployment == "ec2" ? "http://${aws_instance.influxdb[0].private_ip}:8086" :
    var.influxdb_deployment == "timestream" ? "https://${aws_timestreaminfluxdb_db_instance.influxdb[0].endpoint}:8086" :
    var.influxdb_url
  )
}

# One customer-managed key for everything this stack stores: model objects, secrets, Lambda
# environment, the dead-letter queue, SNS, schedules and log groups.
resource "aws_kms_key" "main" {
  description             = "${local.name}: models, secrets, logs, queues"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111: this is a key policy: "*" as resource means this key only, and write access is limited to the account root (the AWS default) and to conditioned service principals.
  # checkov:skip=CKV_AWS_356: in a KMS key policy the resource "*" refers to the key the policy is attached to; no narrower ARN exists.
  # checkov:skip=CKV_AWS_109: key administration stays with the account root (AWS's default key policy statement); without it the key becomes unmanageable.
  # Key administration and IAM-delegated use stay with the account (standard default statement).
  statement {
    sid       = "AccountRoot"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts this stack's log groups only.
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*${local.name}*"]
    }
  }

  # CloudWatch alarms publish to the encrypted SNS topic; S3 and EventBridge deliver encrypted
  # events and messages.
  statement {
    sid       = "ServicePublishers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com", "scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
