"""Images: loading every input form and preprocessing as transformers' image processors."""
