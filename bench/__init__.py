"""Load harness, network lab and reports for ClutchCall Streams."""
