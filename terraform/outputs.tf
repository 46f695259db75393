output "model_bucket" {
  description = "S3 bucket of the model registry."
  value       = aws_s3_bucket.models.id
}

output "model_registry_uri" {
  description = "Where to promote models: experiment promote RUN_ID --to <this> --alias <model_alias>."
  value       = "s3://${aws_s3_bucket.models.id}/${var.model_prefix}"
}

output "lambda_function_names" {
  description = "Lambda function name per concern."
  value       = { for k, f in aws_lambda_function.runtime : k => f.function_name }
}

output "lambda_anomaly_detector_arn" {
  description = "ARN of the anomaly-detection function."
  value       = aws_lambda_function.runtime["anomaly-detector"].arn
}

output "lambda_predictor_arn" {
  description = "ARN of the prediction function (null when enable_prediction is false)."
  value       = var.enable_prediction ? aws_lambda_function.runtime["predictor"].arn : null
}

output "schedules" {
  description = "EventBridge Scheduler schedules (one per function and shard) and the input each passes."
  value       = { for k, s in aws_scheduler_schedule.tick : k => s.target[0].input }
}

output "dead_letter_queue_url" {
  description = "SQS queue receiving failed or expired ticks."
  value       = aws_sqs_queue.dlq.url
}

output "alerting_secret_arn" {
  description = "Secrets Manager secret to put the Slack webhook URL and PagerDuty routing key into."
  value       = aws_secretsmanager_secret.alerting.arn
}

output "influxdb_secret_arn" {
  description = "Secrets Manager secret holding the InfluxDB credentials."
  value       = aws_secretsmanager_secret.influxdb.arn
}

output "influxdb_url" {
  description = "InfluxDB endpoint the runtime reads (private to the VPC for ec2 and timestream)."
  value       = local.influxdb_url
}

output "influxdb_instance_id" {
  description = "EC2 instance of InfluxDB (ec2 deployment; connect with `aws ssm start-session --target <id>`)."
  value       = var.influxdb_deployment == "ec2" ? aws_instance.influxdb[0].id : null
}

output "cloudwatch_dashboard_url" {
  description = "The CloudWatch dashboard."
  value       = "https://console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards:name=${aws_cloudwatch_dashboard.main.dashboard_name}"
}

output "alarm_topic_arn" {
  description = "SNS topic of the CloudWatch alarms (subscribe on-call tooling here)."
  value       = aws_sns_topic.alarms.arn
}

output "kms_key_arn" {
  description = "The stack's customer-managed KMS key."
  value       = aws_kms_key.main.arn
}
