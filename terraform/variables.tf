# ---------------------------------------------------------------------------------------------
# Naming and placement
# ---------------------------------------------------------------------------------------------

variable "project_name" {
  description = "Prefix of every resource name (Lambda functions, bucket, log groups, dashboard)."
  type        = string
  default     = "aiops-monitoring"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}[a-z0-9]$", var.project_name))
    error_message = "project_name: 4-32 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment" {
  description = "Deployment stage, part of every name: dev, staging or prod."
  type        = string
  default     = "prod"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like us-east-1."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Model registry (S3): the layout `experiment promote --to s3://BUCKET/PREFIX` writes
# ---------------------------------------------------------------------------------------------

variable "model_bucket_name" {
  description = "Name of the S3 model bucket. Null: \"<project>-<environment>-models-<account id>\"."
  type        = string
  default     = null

  validation {
    condition     = var.model_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.model_bucket_name))
    error_message = "model_bucket_name must be a valid S3 bucket name (3-63 characters, lower case, digits, '.', '-')."
  }
}

variable "model_prefix" {
  description = "Key prefix of the registry inside the bucket (no leading or trailing '/'). The runtime reads <prefix>/<model>/aliases/<alias> and <prefix>/<model>/versions/<n>/..."
  type        = string
  default     = "models"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$", var.model_prefix)) && !strcontains(var.model_prefix, "//")
    error_message = "model_prefix: letters, digits, '.', '_', '-', '/', no leading, trailing or doubled '/'."
  }
}

variable "model_alias" {
  description = "Registry alias the runtime follows (moved by `experiment promote --alias`)."
  type        = string
  default     = "champion"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,62}$", var.model_alias))
    error_message = "model_alias: lower-case letters, digits, '_' and '-', starting with a letter."
  }
}

variable "model_noncurrent_version_days" {
  description = "Days an overwritten or deleted object version (e.g. an old alias pointer) is kept before it expires."
  type        = number
  default     = 90

  validation {
    condition     = var.model_noncurrent_version_days >= 1 && var.model_noncurrent_version_days <= 3650
    error_message = "model_noncurrent_version_days must be between 1 and 3650."
  }
}

variable "model_archive_after_days" {
  description = "Days after which current model objects move to S3 Standard-IA (0 turns the transition off). Promoted versions are immutable and rarely read once superseded."
  type        = number
  default     = 60

  validation {
    condition     = var.model_archive_after_days == 0 || var.model_archive_after_days >= 30
    error_message = "model_archive_after_days must be 0 (off) or at least 30 (S3's minimum for Standard-IA)."
  }
}

# ---------------------------------------------------------------------------------------------
# Lambda: the `runtime` binary as a custom runtime (bootstrap)
# ---------------------------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Path of the Lambda package built by `terraform/package-lambda.sh` (a zip holding the `runtime` binary as `bootstrap`)."
  type        = string
  default     = "../target/lambda/runtime/bootstrap.zip"
}

variable "lambda_architecture" {
  description = "CPU architecture of the Lambda functions; must match the package (arm64 is cheaper per GB-second)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "secrets_extension_layer_arn" {
  description = "ARN of the AWS Parameters and Secrets Lambda Extension layer for your region and architecture (see the AWS docs). With it the runtime reads the alerting and InfluxDB secrets at cold start; without it, pass them as environment through your own means."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_extension_layer_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9-_]+:[0-9]+$", var.secrets_extension_layer_arn))
    error_message = "secrets_extension_layer_arn must be a Lambda layer version ARN."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of each Lambda function in MB (CPU share grows with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.lambda_memory_mb >= 128 && var.lambda_memory_mb <= 10240
    error_message = "lambda_memory_mb must be between 128 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of one tick. Keep it below the schedule period so ticks do not overlap."
  type        = number
  default     = 50

  validation {
    condition     = var.lambda_timeout_seconds >= 5 && var.lambda_timeout_seconds <= 900
    error_message = "lambda_timeout_seconds must be between 5 and 900."
  }
}

variable "detection_schedule" {
  description = "EventBridge Scheduler expression of the anomaly-detection tick. One minute is EventBridge's finest rate; the runtime scores every sample since the last tick, so 10 s data is still scored at 10 s resolution."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(rate\\(.+\\)|cron\\(.+\\))$", var.detection_schedule))
    error_message = "detection_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "prediction_schedule" {
  description = "EventBridge Scheduler expression of the LSTM prediction tick (predictive scaling alerts)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate\\(.+\\)|cron\\(.+\\))$", var.prediction_schedule))
    error_message = "prediction_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "enable_prediction" {
  description = "Deploy the prediction function and its schedule (see forecast_model)."
  type        = bool
  default     = true
}

variable "forecast_model" {
  description = "Forecaster of the prediction function: auto (statistical, fitted per server from the history it reads; no training job), lstm (needs an LSTM bundle packed into the Lambda zip: FORECASTER_BUNDLE_DIR=... terraform/package-lambda.sh) or registry (the forecaster promoted to the model registry)."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "lstm", "registry"], var.forecast_model)
    error_message = "forecast_model must be auto, lstm or registry."
  }
}

variable "detection_shards" {
  description = "Fan-out: the detection tick is split into this many shards of the server list, one schedule (and one concurrent invocation) per shard; shard i of N monitors the servers whose hash mod N is i."
  type        = number
  default     = 1

  validation {
    condition     = var.detection_shards >= 1 && var.detection_shards <= 100 && floor(var.detection_shards) == var.detection_shards
    error_message = "detection_shards must be a whole number between 1 and 100."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of each function. Null: detection_shards + 1 for detection, 1 for prediction (one spare for retries)."
  type        = number
  default     = null

  validation {
    # Terraform evaluates both sides of `||`: a comparison with null is an error, so coalesce.
    condition     = var.reserved_concurrency == null || (coalesce(var.reserved_concurrency, 1) >= 1 && coalesce(var.reserved_concurrency, 1) <= 1000)
    error_message = "reserved_concurrency must be null or between 1 and 1000."
  }
}

variable "enable_xray" {
  description = "Active X-Ray tracing of the Lambda functions."
  type        = bool
  default     = true
}

variable "runtime_log_level" {
  description = "RUST_LOG filter of the runtime (error, warn, info, debug, or a tracing directive list)."
  type        = string
  default     = "info"
}

variable "monitored_servers" {
  description = "Servers to monitor (empty: every server found in the source). Sharded across detection_shards."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------
# Metrics source: InfluxDB
# ---------------------------------------------------------------------------------------------

variable "influxdb_deployment" {
  description = "Where the metrics live: \"ec2\" (InfluxDB 1.x on an EC2 instance in a private subnet, as the reference deployment), \"timestream\" (Amazon Timestream for InfluxDB 2.x, private), or \"external\" (an existing endpoint given by influxdb_url)."
  type        = string
  default     = "ec2"

  validation {
    condition     = contains(["ec2", "timestream", "external"], var.influxdb_deployment)
    error_message = "influxdb_deployment must be ec2, timestream or external."
  }
}

variable "influxdb_url" {
  description = "URL of an existing InfluxDB when influxdb_deployment = \"external\" (e.g. https://influx.example.com:8086)."
  type        = string
  default     = null

  validation {
    condition     = var.influxdb_url == null || can(regex("^https?://[^\\s/]+(:[0-9]+)?(/.*)?$", var.influxdb_url))
    error_message = "influxdb_url must be an http(s) URL."
  }
}

variable "influxdb_database" {
  description = "InfluxDB 1.x database (or 2.x bucket) holding the metrics."
  type        = string
  default     = "metrics"
}

variable "influxdb_instance_type" {
  description = "EC2 instance type of the InfluxDB server (influxdb_deployment = \"ec2\"); must be EBS-optimized capable."
  type        = string
  default     = "t3.medium"
}

variable "influxdb_volume_gb" {
  description = "Size of the InfluxDB server's encrypted root volume in GB."
  type        = number
  default     = 50

  validation {
    condition     = var.influxdb_volume_gb >= 20 && var.influxdb_volume_gb <= 16384
    error_message = "influxdb_volume_gb must be between 20 and 16384."
  }
}

variable "influxdb_allowed_cidrs" {
  description = "Extra CIDR blocks allowed to reach InfluxDB on 8086 (collectors, VPN). Empty by default: only the Lambda functions can. Never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.influxdb_allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "influxdb_allowed_cidrs must be valid CIDR blocks and must not include 0.0.0.0/0."
  }
}

variable "timestream_instance_type" {
  description = "Instance class of Timestream for InfluxDB (influxdb_deployment = \"timestream\")."
  type        = string
  default     = "db.influx.medium"
}

variable "timestream_admin_password" {
  description = "Initial admin password of Timestream for InfluxDB (required when influxdb_deployment = \"timestream\"; 8-64 letters and digits, all the service accepts). Stored in Terraform state: keep state encrypted. Rotate after creation."
  type        = string
  default     = null
  sensitive   = true

  validation {
    # The provider refuses anything but letters and digits only at plan time, naming the resource.
    condition     = var.timestream_admin_password == null || can(regex("^[a-zA-Z0-9]{8,64}$", coalesce(var.timestream_admin_password, "x")))
    error_message = "timestream_admin_password must be 8-64 letters and digits."
  }
}

variable "availability_zones" {
  description = "The two availability zones of the private subnets (null: the region's \"a\" and \"b\" zones)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.availability_zones == null || length(coalesce(var.availability_zones, ["a", "b"])) == 2
    error_message = "availability_zones must name exactly two zones."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC created for InfluxDB and the Lambda functions (ec2 and timestream deployments)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

# ---------------------------------------------------------------------------------------------
# Alerting secrets: never give them defaults; prefer setting them out of band
# ---------------------------------------------------------------------------------------------

variable "slack_webhook_url" {
  description = "Slack incoming-webhook URL. Null (recommended): the secret is created empty and set out of band with `aws secretsmanager put-secret-value`, so it never enters Terraform state."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.slack_webhook_url == null || startswith(coalesce(var.slack_webhook_url, "https://"), "https://")
    error_message = "slack_webhook_url must be an https:// URL."
  }
}

variable "pagerduty_routing_key" {
  description = "PagerDuty Events API v2 routing (integration) key. Null (recommended): set out of band, see slack_webhook_url."
  type        = string
  default     = null
  sensitive   = true
}

variable "alarm_email" {
  description = "E-mail subscribed to the CloudWatch alarms' SNS topic (null: no subscription)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", coalesce(var.alarm_email, "a@b.c")))
    error_message = "alarm_email must be an e-mail address."
  }
}

# ---------------------------------------------------------------------------------------------
# Logs and metrics
# ---------------------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group (Lambda, VPC flow logs), in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the runtime's custom metrics (emitted as Embedded Metric Format log lines)."
  type        = string
  default     = "AIOps/Monitoring"
}
