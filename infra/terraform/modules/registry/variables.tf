variable "name" {
  description = "Name prefix for the repositories (e.g. esteira-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "repositories" {
  description = "Image repositories to create, by short name: serving (inference service), training (esteira train), lambdas (all workflow Lambdas in one image), mlflow (tracking server)."
  type        = set(string)
  default     = ["serving", "training", "lambdas", "mlflow"]
  validation {
    condition     = alltrue([for r in var.repositories : can(regex("^[a-z][a-z0-9-]*$", r))])
    error_message = "Repository short names are lowercase letters, digits and dashes."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN encrypting the images."
  type        = string
}

variable "keep_images" {
  description = "How many images per repository the lifecycle policy keeps (older ones are expired; rollback needs a few)."
  type        = number
  default     = 30
  validation {
    condition     = var.keep_images >= 3
    error_message = "Keep at least 3 images so rollback has somewhere to go."
  }
}

variable "force_delete" {
  description = "Allow destroying repositories that still hold images (dev convenience)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
