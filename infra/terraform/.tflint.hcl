# tflint with its bundled terraform ruleset. The AWS ruleset (tflint-ruleset-aws) is not installable
# offline here: proxy.golang.org refuses the module and tflint's installer downloads from GitHub.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}

# Provider versions are pinned once in each module's versions.tf with a range; the lock file pins exact builds.
rule "terraform_module_version" {
  enabled = false
}
