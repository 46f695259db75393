# `terraform test`: the whole configuration planned offline against a mocked AWS provider (the
# provider copy's schema, no credentials, no API calls), so variable validations, preconditions
# and the values that reach the functions are checked, not only the syntax `validate` sees.
# tests/run runs it after `terraform init -plugin-dir=/opt/tf-plugins`.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b"] }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
}

variables {
  # Any existing file: the plan only checks that the package exists and hashes it.
  lambda_zip_path = "terraform.tfvars.example"
}

run "defaults_forecast_with_auto_and_no_bundle" {
  command = plan

  assert {
    condition     = aws_lambda_function.runtime["predictor"].environment[0].variables["FORECAST_MODEL"] == "auto"
    error_message = "The predictor forecasts with auto by default."
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.runtime["predictor"].environment[0].variables), "FORECASTER_BUNDLE")
    error_message = "Without an LSTM there is no bundle to read."
  }
  assert {
    condition     = aws_lambda_function.runtime["predictor"].environment[0].variables["RUNTIME_MODE"] == "predict" && aws_lambda_function.runtime["anomaly-detector"].environment[0].variables["RUNTIME_MODE"] == "detect"
    error_message = "Each function runs its own mode."
  }
  # reserved_concurrency unset: detection_shards + 1 for detection, 2 for prediction.
  assert {
    condition     = aws_lambda_function.runtime["anomaly-detector"].reserved_concurrent_executions == 2 && aws_lambda_function.runtime["predictor"].reserved_concurrent_executions == 2
    error_message = "Default reserved concurrency: shards + 1 and 2."
  }
  assert {
    condition     = length(aws_scheduler_schedule.tick) == 2
    error_message = "One schedule per function and shard."
  }
}

run "an_lstm_reads_the_packed_bundle" {
  command = plan

  variables {
    forecast_model = "lstm"
  }

  assert {
    condition     = aws_lambda_function.runtime["predictor"].environment[0].variables["FORECASTER_BUNDLE"] == "/var/task/forecaster"
    error_message = "forecast_model = lstm points the runtime at the bundle in the package."
  }
}

run "detection_fans_out_over_shards" {
  command = plan

  variables {
    detection_shards     = 4
    enable_prediction    = false
    reserved_concurrency = 10
  }

  assert {
    condition     = length(aws_scheduler_schedule.tick) == 4 && !contains(keys(aws_lambda_function.runtime), "predictor")
    error_message = "Four detection schedules and no predictor."
  }
  assert {
    condition     = jsondecode(aws_scheduler_schedule.tick["anomaly-detector-3"].target[0].input).shard == 3
    error_message = "Each schedule passes its shard."
  }
  assert {
    condition     = aws_lambda_function.runtime["anomaly-detector"].reserved_concurrent_executions == 10
    error_message = "reserved_concurrency is used when set."
  }
}

run "a_bad_forecast_model_is_refused" {
  command = plan

  variables {
    forecast_model = "prophet"
  }

  expect_failures = [var.forecast_model]
}

run "reserved_concurrency_out_of_range_is_refused" {
  command = plan

  variables {
    reserved_concurrency = 0
  }

  expect_failures = [var.reserved_concurrency]
}

run "timestream_replaces_the_ec2_instance" {
  command = plan

  variables {
    influxdb_deployment       = "timestream"
    timestream_admin_password = "Alphanumeric8"
  }

  assert {
    condition     = length(aws_timestreaminfluxdb_db_instance.influxdb) == 1 && length(aws_instance.influxdb) == 0
    error_message = "One Timestream for InfluxDB instance, no EC2 instance."
  }
}

run "a_timestream_password_the_service_would_refuse_is_refused_first" {
  command = plan

  variables {
    influxdb_deployment       = "timestream"
    timestream_admin_password = "with-dashes"
  }

  expect_failures = [var.timestream_admin_password]
}

run "timestream_needs_a_password" {
  command = plan

  variables {
    influxdb_deployment = "timestream"
  }

  expect_failures = [aws_timestreaminfluxdb_db_instance.influxdb]
}

run "an_external_influxdb_is_read_at_its_url" {
  command = plan

  variables {
    influxdb_deployment = "external"
    influxdb_url        = "https://influx.example.com:8086"
  }

  assert {
    condition     = length(aws_instance.influxdb) == 0 && aws_lambda_function.runtime["anomaly-detector"].environment[0].variables["INFLUXDB_URL"] == "https://influx.example.com:8086"
    error_message = "No InfluxDB instance; the functions read the given URL."
  }
}

run "every_option_at_once_plans" {
  command = plan

  variables {
    enable_xray                 = true
    secrets_extension_layer_arn = "arn:aws:lambda:us-east-1:177933569100:layer:AWS-Parameters-and-Secrets-Lambda-Extension:11"
    alarm_email                 = "ops@example.com"
    slack_webhook_url           = "https://hooks.slack.com/services/T0/B0/X0"
    pagerduty_routing_key       = "abc123"
    availability_zones          = ["us-east-1a", "us-east-1c"]
    model_bucket_name           = "my-models-bucket"
    monitored_servers           = ["web-1", "db-1"]
    forecast_model              = "registry"
  }

  assert {
    condition     = aws_lambda_function.runtime["predictor"].environment[0].variables["MONITORED_SERVERS"] == "web-1,db-1" && aws_lambda_function.runtime["predictor"].tracing_config[0].mode == "Active"
    error_message = "Servers and tracing reach the functions."
  }
}
