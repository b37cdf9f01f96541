"""The videogen pipeline: `pipeline.pipeline.build_pipeline(config)` wires the components; `compile_pipeline` writes
the YAML committed at pipeline/video_generation.yaml."""
