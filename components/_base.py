"""What every component shares: the default image baked into the decorator (the pipeline overrides it per task)."""

from pipeline.config import ClusterConfig

DEFAULT_IMAGE = ClusterConfig().image
