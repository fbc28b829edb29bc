"""Beam PTransforms and DoFns shared by the templates-mining and pipeline jobs."""
