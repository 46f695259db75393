# Alerting and InfluxDB credentials live in Secrets Manager, encrypted with the stack's key.
# The runtime reads them at cold start (ALERTING_SECRET_ARN, INFLUXDB_SECRET_ARN) and never logs
# them. By default the secrets are created empty, and their values are set out of band, so they
# never enter Terraform state:
#
#   aws secretsmanager put-secret-value --secret-id <alerting_secret_arn> \
#     --secret-string '{"slack_webhook_url":"https://hooks.slack.com/...","pagerduty_routing_key":"..."}'
#
# With influxdb_deployment = "ec2" the InfluxDB server generates its own admin password at first
# boot and writes it into the influxdb secret itself.

resource "aws_secretsmanager_secret" "alerting" {
  name        = "${local.name}/alerting"
  description = "Slack webhook URL and PagerDuty routing key of ${local.name} (JSON: slack_webhook_url, pagerduty_routing_key)."
  kms_key_id  = aws_kms_key.main.arn

  # checkov:skip=CKV2_AWS_57: a Slack webhook URL and a PagerDuty routing key are issued by those services; no Lambda rotator can mint new ones. Rotate them by hand there and put the new value.
}

resource "aws_secretsmanager_secret_version" "alerting" {
  count     = var.slack_webhook_url != null || var.pagerduty_routing_key != null ? 1 : 0
  secret_id = aws_secretsmanager_secret.alerting.id
  secret_string = jsonencode({
    slack_webhook_url     = var.slack_webhook_url
    pagerduty_routing_key = var.pagerduty_routing_key
  })
}

resource "aws_secretsmanager_secret" "influxdb" {
  name        = "${local.name}/influxdb"
  description = "InfluxDB credentials of ${local.name} (JSON: username, password or token)."
  kms_key_id  = aws_kms_key.main.arn

  # checkov:skip=CKV2_AWS_57: the password is generated on the InfluxDB server (ec2) or set for Timestream; rotating it needs the database's own API, which this stack does not automate yet. Rotate by hand and put the new value.
}

resource "aws_secretsmanager_secret_version" "influxdb_timestream" {
  count     = var.influxdb_deployment == "timestream" ? 1 : 0
  secret_id = aws_secretsmanager_secret.influxdb.id
  secret_string = jsonencode({
    username = "admin"
    password = var.timestream_admin_password
  })
}
