"""The templates-mining job: real user queries -> a deduplicated, clustered <fi> template library."""
