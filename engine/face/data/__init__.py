"""Package data of the face stage: the canonical face template (see `make_template`)."""
