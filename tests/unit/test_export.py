"""The SavedModel export that the K80 image (TensorFlow 2.14, Keras 2) loads instead of generator.keras."""

import numpy as np

from videogen.export import export_savedmodel, load_savedmodel
from videogen.model import build_generator


def test_savedmodel_serves_the_same_frames_and_dropout_endpoint_is_stochastic(tmp_path):
    """`serve` equals the Keras model in inference mode; `serve_dropout` differs between calls (dropout on) and its
    mean is near the inference output (BatchNorm on moving statistics, not batch statistics)."""
    generator = build_generator(64, ngf=8, context_frames=2, residual=False)
    frames = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 6)).astype("float32")
    for _ in range(60):  # give BatchNorm realistic moving statistics (fresh ones would shrink activations to ~0)
        generator(frames, training=True)
    export_savedmodel(generator, tmp_path)
    assert (tmp_path / "generator_savedmodel" / "saved_model.pb").exists()
    assert not list(tmp_path.glob(".*partial"))
    expected = generator(frames, training=False).numpy()
    serve = load_savedmodel(tmp_path, dropout=False)
    np.testing.assert_allclose(serve(frames).numpy(), expected, atol=1e-5)
    stochastic = load_savedmodel(tmp_path, dropout=True)
    first, second = stochastic(frames).numpy(), stochastic(frames).numpy()
    assert first.shape == (2, 64, 64, 3)
    assert np.abs(first - second).max() > 1e-4
    # A BatchNorm switched to batch statistics would move the output far more than dropout noise around it.
    mean = np.mean([stochastic(frames).numpy() for _ in range(16)], axis=0)
    assert np.abs(mean - expected).mean() < np.abs(first - expected).mean()


def test_generation_falls_back_to_the_savedmodel_where_keras_is_older_than_3(tmp_path, monkeypatch):
    """The K80 image (Keras 2) generates from generator_savedmodel/: same frames as the Keras path (deterministic,
    float32) to within one uint8 level, and the log says which model it served."""
    import json

    from videogen import generate, generator_io

    generator = build_generator(64, ngf=8, context_frames=1, residual=True)
    generator.save(tmp_path / "generator.keras")
    export_savedmodel(generator, tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"image_size": 64, "context_frames": 1, "fps": 10, "steps": 0}))
    start = tmp_path / "start.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(start)
    settings = generate.GenerateSettings(frames=5, deterministic=True, precision="float32")
    generate.generate(tmp_path, tmp_path / "keras-out", settings, start_image=start)
    monkeypatch.setattr(generator_io, "_keras_major", lambda: 2)
    model, _ = generate.load_generator(tmp_path)
    assert isinstance(model, generate.SavedModelGenerator)
    generate.generate(tmp_path, tmp_path / "savedmodel-out", settings, start_image=start)
    keras_frames = np.load(tmp_path / "keras-out" / "frames.npy").astype(int)
    saved_frames = np.load(tmp_path / "savedmodel-out" / "frames.npy").astype(int)
    assert saved_frames.shape == (5, 1, 64, 64, 3)
    assert np.abs(keras_frames - saved_frames).max() <= 1
