"""The dataset's own domain: the catalog of features and chunks, egomotion, video cutting, zip fingerprints."""
