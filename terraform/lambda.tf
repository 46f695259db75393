# The `runtime` binary as Lambda functions (custom runtime provided.al2023, package built by
# terraform/package-lambda.sh), one per concern, ticked by EventBridge Scheduler. The detection
# tick is fanned out: one schedule per shard, each passing {"mode","shard","shards"}.

locals {
  lambda_environment = {
    RUNTIME_MODE        = null # set per function below
    MODEL_URI           = "s3://${aws_s3_bucket.models.id}/${var.model_prefix}"
    MODEL_ALIAS         = var.model_alias
    INFLUXDB_URL        = local.influxdb_url
    INFLUXDB_DATABASE   = var.influxdb_database
    INFLUXDB_SECRET_ARN = aws_secretsmanager_secret.influxdb.arn
    ALERTING_SECRET_ARN = aws_secretsmanager_secret.alerting.arn
    METRICS_NAMESPACE   = var.metrics_namespace
    MONITORED_SERVERS   = join(",", var.monitored_servers)
    RUST_LOG            = var.runtime_log_level
    # mode = "predict": the statistical `auto` forecaster fitted per server (no bundle), the LSTM
    # bundle packed by package-lambda.sh (FORECASTER_BUNDLE_DIR), or the registry's forecaster.
    FORECAST_MODEL = var.forecast_model
  }
  # Only the LSTM reads a bundle from the package.
  forecaster_environment = var.forecast_model == "lstm" ? { FORECASTER_BUNDLE = "/var/task/forecaster" } : {}
}

resource "aws_lambda_function" "runtime" {
  for_each = local.functions

  function_name    = "${local.name}-${each.key}"
  description      = "${local.name} runtime: ${each.value.mode} tick"
  role             = aws_iam_role.lambda.arn
  filename         = var.lambda_zip_path
  source_code_hash = try(filebase64sha256(var.lambda_zip_path), null)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  layers           = var.secrets_extension_layer_arn == null ? [] : [var.secrets_extension_layer_arn]
  memory_size      = var.lambda_memory_mb
  timeout          = var.lambda_timeout_seconds
  kms_key_arn      = aws_kms_key.main.arn

  reserved_concurrent_executions = each.value.concurrency

  environment {
    variables = merge(local.lambda_environment, local.forecaster_environment, { RUNTIME_MODE = each.value.mode })
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }

  tracing_config {
    mode = var.enable_xray ? "Active" : "PassThrough"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = aws_subnet.private[*].id
      security_group_ids = [aws_security_group.lambda[0].id]
    }
  }

  lifecycle {
    precondition {
      condition     = fileexists(var.lambda_zip_path)
      error_message = "No Lambda package at lambda_zip_path; build it first: terraform/package-lambda.sh"
    }
    precondition {
      condition     = local.influxdb_url != null
      error_message = "influxdb_deployment = \"external\" needs influxdb_url."
    }
  }

  depends_on = [
    aws_iam_role_policy.lambda,
    aws_cloudwatch_log_group.lambda,
  ]

  # checkov:skip=CKV_AWS_272: the package is built from source by package-lambda.sh in the deploying pipeline; AWS Signer profiles are an organisation choice this stack does not impose.
}

# Ticks are idempotent and the next tick covers the same window: no async retries of stale ticks,
# failures go to the dead-letter queue (and its alarm).
resource "aws_lambda_function_event_invoke_config" "runtime" {
  for_each                     = local.functions
  function_name                = aws_lambda_function.runtime[each.key].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 120

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dlq.arn
    }
  }
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_sqs_queue" "dlq" {
  name                      = "${local.name}-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.main.arn
}

# --- IAM: the functions' role ----------------------------------------------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${local.name}-runtime"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.lambda : "${g.arn}:*"]
  }

  statement {
    sid       = "ListRegistry"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.models.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.model_prefix, "${var.model_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/*"]
  }

  # The remote outbox: undelivered alerts kept beside the models so a recycled execution
  # environment loses none (runtime::sinks::remote; create-only puts, deletes once delivered).
  statement {
    sid       = "OutboxInRegistry"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.models.arn}/${var.model_prefix}/outbox/*"]
  }

  statement {
    sid     = "ReadSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      aws_secretsmanager_secret.alerting.arn,
      aws_secretsmanager_secret.influxdb.arn,
    ]
  }

  statement {
    sid       = "DecryptWithStackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "runtime"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# ENI management inside the VPC (AWS-managed; needs ec2:*NetworkInterface* on "*", which no ARN narrows).
resource "aws_iam_role_policy_attachment" "lambda_vpc" {
  count      = local.in_vpc ? 1 : 0
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "lambda_xray" {
  count      = var.enable_xray ? 1 : 0
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# --- EventBridge Scheduler: one schedule per (function, shard) -------------------------------

resource "aws_scheduler_schedule_group" "main" {
  name = local.name
}

resource "aws_scheduler_schedule" "tick" {
  for_each = local.schedules

  name                         = each.key
  group_name                   = aws_scheduler_schedule_group.main.name
  description                  = "${local.name}: ${each.value.input}"
  schedule_expression          = each.value.schedule
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = aws_kms_key.main.arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.runtime[each.value.function].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = each.value.input

    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }

    dead_letter_config {
      arn = aws_sqs_queue.dlq.arn
    }
  }
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${local.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeRuntime"
    actions   = ["lambda:InvokeFunction"]
    resources = [for f in aws_lambda_function.runtime : f.arn]
  }
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }
  statement {
    sid       = "StackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "invoke-runtime"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
