"""Run the whole platform on one machine: for the demo, `make up`, and end-to-end tests."""
