"""Dataset formats: COCO (`coco`), YOLO-seg (`yolo`), colour masks (`color_masks`), and conversion
between them through the prodseg folder (`convert.READERS` / `convert.WRITERS`)."""
