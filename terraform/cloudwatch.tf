# The reference deployment's dashboard and the alarms that page when the monitoring itself breaks.
# The runtime emits its custom metrics as CloudWatch Embedded Metric Format log lines (no
# PutMetricData permission needed), in var.metrics_namespace with dimension Function (the Lambda
# function's name): AnomaliesDetected (Count), AlertsGenerated (Count), RowsScored (Count),
# LambdaExecutionTime (Milliseconds). The metrics the model scores come from its manifest.

locals {
  detector_name = aws_lambda_function.runtime["anomaly-detector"].function_name

  custom_metric_widgets = [
    for i, m in [
      { name = "AnomaliesDetected", stat = "Sum", title = "Anomalies detected" },
      { name = "AlertsGenerated", stat = "Sum", title = "Alerts generated" },
      { name = "RowsScored", stat = "Sum", title = "Rows scored" },
      { name = "LambdaExecutionTime", stat = "p99", title = "Tick execution time p99 (ms)" },
      ] : {
      type   = "metric"
      x      = (i % 2) * 12
      y      = floor(i / 2) * 6
      width  = 12
      height = 6
      properties = {
        title  = m.title
        region = local.region
        stat   = m.stat
        period = 300
        view   = "timeSeries"
        metrics = [
          for f in aws_lambda_function.runtime : [var.metrics_namespace, m.name, "Function", f.function_name]
        ]
      }
    }
  ]

  lambda_metric_widgets = [
    for i, m in [
      { name = "Errors", stat = "Sum" },
      { name = "Throttles", stat = "Sum" },
      { name = "Duration", stat = "p99" },
      ] : {
      type   = "metric"
      x      = i * 8
      y      = 12
      width  = 8
      height = 6
      properties = {
        title   = "Lambda ${m.name} (${m.stat})"
        region  = local.region
        stat    = m.stat
        period  = 300
        view    = "timeSeries"
        metrics = [for f in aws_lambda_function.runtime : ["AWS/Lambda", m.name, "FunctionName", f.function_name]]
      }
    }
  ]
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = "${local.name}-dashboard"
  dashboard_body = jsonencode({
    widgets = concat(local.custom_metric_widgets, local.lambda_metric_widgets, [
      {
        type   = "metric"
        x      = 0
        y      = 18
        width  = 12
        height = 6
        properties = {
          title   = "Dead-letter queue depth"
          region  = local.region
          stat    = "Maximum"
          period  = 300
          metrics = [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dlq.name]]
        }
      }
    ])
  })
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email != null ? 1 : 0
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  lambda_alarms = merge([
    for fn, f in aws_lambda_function.runtime : {
      "${fn}-errors"    = { function = f.function_name, metric = "Errors", what = "The ${fn} tick failed: monitoring may be blind. Check its log group." }
      "${fn}-throttles" = { function = f.function_name, metric = "Throttles", what = "The ${fn} tick was throttled: raise reserved_concurrency or detection_shards." }
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each            = local.lambda_alarms
  alarm_name          = "${local.name}-${each.key}"
  alarm_description   = each.value.what
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# No ticks at all (schedule disabled, permissions broken) is as bad as failing ticks.
resource "aws_cloudwatch_metric_alarm" "detector_silent" {
  alarm_name          = "${local.detector_name}-no-invocations"
  alarm_description   = "The anomaly-detection tick has not run for 15 minutes."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = local.detector_name }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  alarm_name          = "${local.name}-dead-letters"
  alarm_description   = "Ticks failed or expired into the dead-letter queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}
