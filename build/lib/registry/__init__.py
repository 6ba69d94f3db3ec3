"""A model registry and prediction service for scikit-learn models on S3."""
