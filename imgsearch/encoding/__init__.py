"""Pictures to vectors: decoding, preprocessing, the encoder registry and model runtimes."""
