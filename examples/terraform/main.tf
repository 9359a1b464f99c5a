# An endpointkit endpoint managed by Terraform: provisioned with terraform_data + local-exec, read back with the
# external data source. Needs `endpointkit` on PATH and Terraform >= 1.5. See README.md for the caveats.

terraform {
  required_version = ">= 1.5"
  required_providers {
    external = {
      source  = "hashicorp/external"
      version = ">= 2.3"
    }
  }
}

variable "spec" {
  description = "The endpointkit spec file, relative to this module."
  type        = string
  default     = "../quickstart/endpoint.yaml"
}

variable "target" {
  description = "Which of the spec's targets to deploy to."
  type        = string
  default     = "local"
}

variable "repository" {
  description = "The spec's model repository folder, relative to this module: a change inside it re-runs apply."
  type        = string
  default     = "../quickstart/model_repository"
}

locals {
  # Terraform runs programs in the directory it was started from, which is not this module's when the module is
  # called from another one: hand endpointkit absolute paths built on path.module.
  spec       = abspath("${path.module}/${var.spec}")
  repository = abspath("${path.module}/${var.repository}")

  repository_sha256 = sha256(join("\n", [
    for file in sort(fileset(local.repository, "**")) :
    "${file} ${filesha256("${local.repository}/${file}")}"
    if !strcontains(file, "__pycache__")
  ]))
}

# Owns the endpoint's lifetime. Creating it does nothing; destroying it (terraform destroy, or a new spec path or
# target) runs `endpointkit destroy`. Destroy-time provisioners may only read `self`, hence `input`.
resource "terraform_data" "endpoint" {
  input            = { spec = local.spec, target = var.target }
  triggers_replace = [var.spec, var.target] # not local.spec: moving the checkout must not replace the endpoint

  provisioner "local-exec" {
    # No shell: Terraform runs interpreter + [command] as one argv list.
    when        = destroy
    interpreter = ["endpointkit", "destroy", "--target", self.input.target]
    command     = self.input.spec
  }
}

# Runs `endpointkit apply` on create, and again whenever the spec file or the model repository changes
# (triggers_replace). Replacing this resource runs no destroy provisioner, so a change is endpointkit's
# blue/green update of the running endpoint, not a delete and re-create.
resource "terraform_data" "apply" {
  triggers_replace = {
    endpoint          = terraform_data.endpoint.id
    spec_sha256       = filesha256(local.spec)
    repository_sha256 = local.repository_sha256
  }

  provisioner "local-exec" {
    interpreter = ["endpointkit", "apply", "--target", var.target, "--json"]
    command     = local.spec
  }
}

# Read-only status (action "status", the default): one describe per resource, nothing changed. With depends_on
# it is read after an apply in the same run, so the outputs show the endpoint as it is now.
data "external" "endpoint" {
  program = ["endpointkit", "terraform"]
  query = {
    spec   = local.spec
    target = var.target
  }
  depends_on = [terraform_data.apply]
}

output "status" {
  description = "IN_SERVICE, CREATING, UPDATING, FAILED, DELETING, NOT_FOUND or UNKNOWN."
  value       = data.external.endpoint.result.status
}

output "url" {
  value = data.external.endpoint.result.url
}

output "expires_at" {
  description = "When `endpointkit reap` may delete it (the spec's ttl), UTC; empty without a ttl."
  value       = data.external.endpoint.result.expires_at
}

output "hourly_cost" {
  description = "Estimated on-demand USD per hour; empty when a price is unknown."
  value       = data.external.endpoint.result.hourly_cost
}

output "variants" {
  value = jsondecode(data.external.endpoint.result.variants)
}

output "deployed_spec_hash" {
  description = "Equal to spec_hash when the running endpoint was applied from this spec."
  value       = data.external.endpoint.result.deployed_spec_hash
}
