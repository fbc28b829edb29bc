"""The pipeline job: corpus documents -> grounded instruction/answer pairs (issue 3)."""
