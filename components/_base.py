"""What every component shares: the default image baked into the decorator (the pipeline overrides it per task).

The registry and tag live here, below the pipeline: ``pipeline.config`` builds every image name from them, so the
components import nothing from the pipeline that wires them.
"""

DEFAULT_REGISTRY = "localhost:5000"
DEFAULT_TAG = "0.1.0"
DEFAULT_IMAGE = f"{DEFAULT_REGISTRY}/videogen:{DEFAULT_TAG}"
