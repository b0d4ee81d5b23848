"""esteira's container images, built and run with real OCI tools (buildah, podman, runc).

`oci.build` builds every image from its Dockerfile; `oci.ignore` applies the build-context rules Docker
applies; `oci.run` starts a container the way an ECS task definition or a Lambda function says.
"""
