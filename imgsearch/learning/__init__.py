"""Learning from a collection: projection heads trained on stored vectors, judged on held-out
images."""
