"""prodseg: train, export and benchmark real-time grocery-shelf segmentation."""

__version__ = "0.1.0"
