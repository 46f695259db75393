# A VPC for InfluxDB (ec2 or timestream) and the Lambda functions that read it. Nothing in it
# accepts traffic from the internet: InfluxDB sits in private subnets and is reachable only from
# the Lambda security group and var.influxdb_allowed_cidrs. The Lambda functions leave through a
# NAT gateway (Slack, PagerDuty, Secrets Manager) and reach S3 through a gateway endpoint.
# With influxdb_deployment = "external" none of this is created and the functions run outside a VPC.

# Exactly the two zones named (default: the region's "a" and "b"), so the subnet layout never
# shifts when AWS adds a zone.
data "aws_availability_zones" "selected" {
  state = "available"
  filter {
    name   = "zone-name"
    values = local.zone_names
  }
}

locals {
  zone_names = coalesce(var.availability_zones, ["${var.aws_region}a", "${var.aws_region}b"])
  azs        = data.aws_availability_zones.selected.names
}

resource "aws_vpc" "main" {
  count                = local.in_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.name }
}

# The default security group of the VPC allows nothing.
resource "aws_default_security_group" "main" {
  count  = local.in_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
}

resource "aws_subnet" "private" {
  count                   = local.in_vpc ? 2 : 0
  vpc_id                  = aws_vpc.main[0].id
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.name}-private-${local.azs[count.index]}" }
}

# Holds only the NAT gateway; nothing launched here gets a public address.
resource "aws_subnet" "public" {
  count                   = local.in_vpc ? 1 : 0
  vpc_id                  = aws_vpc.main[0].id
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, 15)
  availability_zone       = local.azs[0]
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.name}-public-nat" }
}

resource "aws_internet_gateway" "main" {
  count  = local.in_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
  tags   = { Name = local.name }
}

resource "aws_eip" "nat" {
  count  = local.in_vpc ? 1 : 0
  domain = "vpc"
  tags   = { Name = "${local.name}-nat" }

  # checkov:skip=CKV2_AWS_19: the address is attached to the NAT gateway below, not to an EC2 instance.
}

resource "aws_nat_gateway" "main" {
  count         = local.in_vpc ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = { Name = local.name }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_route_table" "public" {
  count  = local.in_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main[0].id
  }
  tags = { Name = "${local.name}-public" }
}

resource "aws_route_table_association" "public" {
  count          = local.in_vpc ? 1 : 0
  subnet_id      = aws_subnet.public[0].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count  = local.in_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.main[0].id
  }
  tags = { Name = "${local.name}-private" }
}

resource "aws_route_table_association" "private" {
  count          = local.in_vpc ? 2 : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

resource "aws_vpc_endpoint" "s3" {
  count             = local.in_vpc ? 1 : 0
  vpc_id            = aws_vpc.main[0].id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private[0].id]
}

# --- security groups -----------------------------------------------------------------------

resource "aws_security_group" "lambda" {
  count       = local.in_vpc ? 1 : 0
  name        = "${local.name}-lambda"
  description = "Runtime Lambda functions: HTTPS out (S3, Secrets Manager, Slack, PagerDuty), InfluxDB in the VPC"
  vpc_id      = aws_vpc.main[0].id
  tags        = { Name = "${local.name}-lambda" }
}

resource "aws_vpc_security_group_egress_rule" "lambda_https" {
  count             = local.in_vpc ? 1 : 0
  security_group_id = aws_security_group.lambda[0].id
  description       = "HTTPS to AWS APIs, Slack and PagerDuty"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "lambda_influxdb" {
  count                        = local.in_vpc ? 1 : 0
  security_group_id            = aws_security_group.lambda[0].id
  description                  = "InfluxDB HTTP API"
  ip_protocol                  = "tcp"
  from_port                    = 8086
  to_port                      = 8086
  referenced_security_group_id = aws_security_group.influxdb[0].id
}

resource "aws_security_group" "influxdb" {
  count       = local.in_vpc ? 1 : 0
  name        = "${local.name}-influxdb"
  description = "InfluxDB: 8086 from the runtime Lambda functions and influxdb_allowed_cidrs only"
  vpc_id      = aws_vpc.main[0].id
  tags        = { Name = "${local.name}-influxdb" }
}

resource "aws_vpc_security_group_ingress_rule" "influxdb_from_lambda" {
  count                        = local.in_vpc ? 1 : 0
  security_group_id            = aws_security_group.influxdb[0].id
  description                  = "InfluxDB HTTP API from the runtime Lambda functions"
  ip_protocol                  = "tcp"
  from_port                    = 8086
  to_port                      = 8086
  referenced_security_group_id = aws_security_group.lambda[0].id
}

resource "aws_vpc_security_group_ingress_rule" "influxdb_allowed" {
  for_each          = local.in_vpc ? toset(var.influxdb_allowed_cidrs) : toset([])
  security_group_id = aws_security_group.influxdb[0].id
  description       = "InfluxDB HTTP API from ${each.value} (influxdb_allowed_cidrs)"
  ip_protocol       = "tcp"
  from_port         = 8086
  to_port           = 8086
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "influxdb_https" {
  count             = local.in_vpc ? 1 : 0
  security_group_id = aws_security_group.influxdb[0].id
  description       = "HTTPS out for package installs and Secrets Manager (through the NAT gateway)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- flow logs -------------------------------------------------------------------------------

resource "aws_flow_log" "main" {
  count                = local.in_vpc ? 1 : 0
  vpc_id               = aws_vpc.main[0].id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  count             = local.in_vpc ? 1 : 0
  name              = "/aws/vpc/${local.name}/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count              = local.in_vpc ? 1 : 0
  name               = "${local.name}-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs" {
  count = local.in_vpc ? 1 : 0
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count  = local.in_vpc ? 1 : 0
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}
