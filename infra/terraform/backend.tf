# Remote state in S3 with S3-native locking (a .tflock object next to the state; no DynamoDB table).
# Partial configuration: pass the bucket, key and region at init time, e.g.
#   tofu init -backend-config=envs/backend-dev.hcl   (copy envs/backend.hcl.example)
# See docs/deploy.md for bootstrapping the bucket.
terraform {
  backend "s3" {}
}
