# Inputs of the ferry AWS module. Nothing here is region-specific: pass the
# VPC, subnets and AMI of the region the calling configuration's provider
# points at.

variable "name" {
  description = "Cluster name: prefix of every resource, the value of the ferry-cluster tag peers are found by, and the Auto Scaling group's name."
  type        = string
  default     = "ferry"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,27}$", var.name))
    error_message = "name: 1-28 characters from a-z, 0-9 and '-', not starting with '-' (load balancer names are limited to 32)."
  }
}

variable "vpc_id" {
  description = "VPC of the nodes and the load balancer."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the nodes, one per availability zone (three or more zones recommended). Private subnets need a NAT gateway or VPC endpoints for Secrets Manager, SSM, EC2 and Auto Scaling, and a route to the identity provider."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: give subnets in at least two availability zones (three for a three-node cluster)."
  }
}

variable "nlb_subnet_ids" {
  description = "Public subnets of the internet-facing NLB, one per zone. Default: subnet_ids."
  type        = list(string)
  default     = []
}

variable "node_count" {
  description = "Number of ferryd nodes. Odd, three or more: a cluster of N survives the loss of (N-1)/2 nodes."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 3 && var.node_count % 2 == 1
    error_message = "node_count: an odd number, at least 3."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the nodes. WireGuard throughput scales with cores and network bandwidth."
  type        = string
  default     = "t3.medium"
}

variable "ami_id" {
  description = "AMI of the nodes: a systemd Linux with a WireGuard-capable kernel (Amazon Linux 2023, Debian 12, Ubuntu 22.04+). The AWS CLI is installed at boot if missing."
  type        = string
}

variable "ferry_version" {
  description = "ferry version being deployed; recorded as a tag, and changing it (with ferryd_url) rolls the nodes."
  type        = string
}

variable "ferryd_url" {
  description = "HTTPS URL of the ferryd binary for the instances' architecture (linux/amd64 or linux/arm64), e.g. a release asset or an S3 presigned URL."
  type        = string

  validation {
    condition     = startswith(var.ferryd_url, "https://")
    error_message = "ferryd_url: want an https:// URL."
  }
}

variable "ferryd_sha256" {
  description = "SHA-256 of the ferryd binary at ferryd_url (hex). The node refuses a binary that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.ferryd_sha256))
    error_message = "ferryd_sha256: 64 lowercase hex digits."
  }
}

variable "public_dns_name" {
  description = "The name clients use, e.g. vpn.example.com: it goes into the API certificates, api.public_url (so the OIDC redirect URI is https://NAME/callback) and the WireGuard endpoint NAME:51820. Point it at the NLB (see route53_zone_id)."
  type        = string
}

variable "route53_zone_id" {
  description = "Optional Route 53 hosted zone in which to create public_dns_name as an alias of the NLB. Null: create the record yourself (CNAME to the endpoint_dns_name output)."
  type        = string
  default     = null
}

variable "oidc_issuer" {
  description = "Issuer URL of the company identity provider, exactly as in its discovery document (see deploy/README.md for Okta, Entra ID, Google and Keycloak)."
  type        = string

  validation {
    condition     = startswith(var.oidc_issuer, "https://")
    error_message = "oidc_issuer: want an https:// URL."
  }
}

variable "oidc_client_id" {
  description = "Client ID of ferry's confidential OIDC client at the identity provider."
  type        = string
}

variable "oidc_client_secret_arn" {
  description = "ARN of the Secrets Manager secret whose SecretString is the OIDC client secret."
  type        = string
}

variable "oidc_scopes" {
  description = "OIDC scopes to request; empty takes ferryd's default (openid, email, profile). Add \"groups\" for providers that need it (Okta, Keycloak)."
  type        = list(string)
  default     = []
}

variable "oidc_groups_claim" {
  description = "ID token claim that carries group membership (groups for Okta, Entra ID and Keycloak)."
  type        = string
  default     = "groups"
}

variable "admin_groups" {
  description = "Identity provider groups whose members are ferry administrators (ferryctl)."
  type        = list(string)
  default     = []
}

variable "master_key_secret_arn" {
  description = "ARN of the Secrets Manager secret whose SecretString is the cluster master key: 32 random bytes in base64 (head -c 32 /dev/urandom | base64). Create it before the first apply and keep an offline copy."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "Customer managed KMS key that encrypts the two secrets, if any (null: the AWS managed aws/secretsmanager key, which needs no extra grant)."
  type        = string
  default     = null
}

variable "allowed_api_cidrs" {
  description = "Client networks allowed to reach the API (TCP 443 on the NLB, 8443 on the nodes; the NLB keeps client addresses). The sign-in pages are served here too."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "allowed_wireguard_cidrs" {
  description = "Client networks allowed to reach WireGuard (UDP 51820)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "monitoring_cidrs" {
  description = "Networks of the Prometheus servers allowed to scrape the nodes' metrics (TCP 9090). Empty: nobody."
  type        = list(string)
  default     = []
}

variable "client_pool" {
  description = "profiles.pool: the clients' tunnel address pool. Must not overlap the VPC or anything clients reach."
  type        = string
  default     = "100.64.0.0/16"
}

variable "dual_stack" {
  description = "Make the NLB dual-stack (ip_address_type dualstack): clients reach the API and WireGuard over IPv6 too, and public_dns_name gets an AAAA record. The NLB subnets need IPv6 CIDR blocks. IPv6 clients reach the nodes' IPv4 addresses through the NLB's own addresses (the nodes see the NLB, not the client), so allowed_*_cidrs cannot filter them: the nodes admit the VPC's range on the API and WireGuard ports."
  type        = bool
  default     = false
}

variable "client_pool6" {
  description = "profiles.pool6: the clients' IPv6 tunnel pool (/64 to /96, e.g. a ULA fd00::/96): each client also gets an IPv6 address, and profiles may name IPv6 destinations. null: IPv4 tunnels only."
  type        = string
  default     = null
}

variable "dns_forwarder" {
  description = "Run each node's DNS forwarder (wireguard.dns): profiles resolve through the nodes, and host rules (host: db.prod.internal) become per-client grants. Upstream: the VPC resolver (the VPC's base address + 2)."
  type        = bool
  default     = true
}

variable "extra_config_yaml" {
  description = "YAML appended to every node's ferryd.yaml, for sections the module does not set, such as audit (sinks) or sessions.lifetime. Top-level keys only; files it names must exist on the node."
  type        = string
  default     = ""
}

variable "enable_ssm_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore so operators get a shell through Session Manager (no SSH is opened)."
  type        = bool
  default     = false
}

variable "enable_instance_refresh" {
  description = "Roll the nodes with an ASG instance refresh whenever the launch template changes (ferry_version, ami_id, ...). Leave false unless an administrator will run `ferryctl cluster remove` for each replaced node during the refresh's pauses: see README.md, \"Rolling replacement\"."
  type        = bool
  default     = false
}

variable "instance_refresh_checkpoint_delay" {
  description = "Seconds an instance refresh pauses after each replaced node (34%, 67%, 100%), for removing the old node from the cluster."
  type        = number
  default     = 1800
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
