"""Hugging Face pieces below the models: checks on a checkpoint folder (:mod:`.checkpoint`), text
encoding and batching for encoders (:mod:`.batching`), the pretraining tokenizer and architecture.
They import nothing from the models or the commands above them; torch and transformers are imported
inside functions, so importing this package is cheap.
"""
