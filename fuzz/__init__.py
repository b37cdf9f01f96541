"""Coverage-guided fuzz harnesses of videogen's readers (atheris): ``make fuzz``, see docs/usage.md, "Fuzzing"."""
