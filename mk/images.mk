# Images built and run here with OCI tools (no Docker engine): oci/build.py, docs/images.md.
# `make images` (mk/ci.mk) is the Docker build on a CI agent that pushes to ECR.
.PHONY: images-local bench-images

images-local: venv ## build every image with buildah (stand-in bases where the pinned ones cannot be pulled)
	$(PY) -m oci.build

bench-images: venv ## image sizes, serving time to /ready, Lambda cold start -> docs/benchmarks.md
	$(PY) -m benchmarks.images
