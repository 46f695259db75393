# Optional InfluxDB for the metrics (influxdb_deployment):
#   "ec2"        InfluxDB 1.x OSS on an EC2 instance in a private subnet (the reference deployment,
#                without its public IP). No SSH: administer it through SSM Session Manager. At first
#                boot it generates its admin password and stores it in the influxdb secret.
#   "timestream" Amazon Timestream for InfluxDB (2.x, Flux; build the runtime with --features flux).
#   "external"   nothing here; the runtime reads var.influxdb_url.

data "aws_ssm_parameter" "al2023" {
  count = var.influxdb_deployment == "ec2" ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

resource "aws_instance" "influxdb" {
  count                  = var.influxdb_deployment == "ec2" ? 1 : 0
  ami                    = nonsensitive(data.aws_ssm_parameter.al2023[0].value)
  instance_type          = var.influxdb_instance_type
  subnet_id              = aws_subnet.private[0].id
  vpc_security_group_ids = [aws_security_group.influxdb[0].id]
  iam_instance_profile   = aws_iam_instance_profile.influxdb[0].name
  ebs_optimized          = true
  monitoring             = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.influxdb_volume_gb
    encrypted             = true
    kms_key_id            = aws_kms_key.main.arn
    delete_on_termination = false
  }

  user_data_replace_on_change = false
  user_data = templatefile("${path.module}/templates/influxdb-user-data.sh.tftpl", {
    region     = local.region
    secret_arn = aws_secretsmanager_secret.influxdb.arn
    database   = var.influxdb_database
  })

  tags = { Name = "${local.name}-influxdb" }

  lifecycle {
    ignore_changes = [ami]
  }
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "influxdb" {
  count              = var.influxdb_deployment == "ec2" ? 1 : 0
  name               = "${local.name}-influxdb"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy_attachment" "influxdb_ssm" {
  count      = var.influxdb_deployment == "ec2" ? 1 : 0
  role       = aws_iam_role.influxdb[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "influxdb" {
  statement {
    sid       = "OwnCredentials"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
    resources = [aws_secretsmanager_secret.influxdb.arn]
  }
  statement {
    sid       = "StackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "influxdb" {
  count  = var.influxdb_deployment == "ec2" ? 1 : 0
  name   = "influxdb-credentials"
  role   = aws_iam_role.influxdb[0].id
  policy = data.aws_iam_policy_document.influxdb.json
}

resource "aws_iam_instance_profile" "influxdb" {
  count = var.influxdb_deployment == "ec2" ? 1 : 0
  name  = "${local.name}-influxdb"
  role  = aws_iam_role.influxdb[0].name
}

resource "aws_timestreaminfluxdb_db_instance" "influxdb" {
  count                  = var.influxdb_deployment == "timestream" ? 1 : 0
  name                   = "${local.name}-influxdb"
  db_instance_type       = var.timestream_instance_type
  allocated_storage      = var.influxdb_volume_gb
  username               = "admin"
  password               = var.timestream_admin_password
  organization           = var.project_name
  bucket                 = var.influxdb_database
  publicly_accessible    = false
  vpc_subnet_ids         = aws_subnet.private[*].id
  vpc_security_group_ids = [aws_security_group.influxdb[0].id]

  lifecycle {
    precondition {
      condition     = var.timestream_admin_password != null
      error_message = "influxdb_deployment = \"timestream\" needs timestream_admin_password."
    }
  }
}
