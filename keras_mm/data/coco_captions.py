"""Reader for MS COCO caption annotations (`captions_*.json`)."""

from keras_mm.api_export import keras_mm_export
from keras_mm.data._files import (
    DEFAULT_MAX_PIXELS,
    check_dir,
    check_image_args,
    get_field,
    get_list,
    read_json,
)
from keras_mm.data._reader_common import (
    build_arrays,
    caption_output,
    dangling_record,
)


@keras_mm_export("keras_mm.data.read_coco_captions")
def read_coco_captions(
    annotations_file,
    image_dir,
    image_size=224,
    sequence_length=32,
    vocabulary=None,
    crop_to_aspect_ratio=True,
    max_pixels=DEFAULT_MAX_PIXELS,
    skip_missing=False,
    max_images=None,
):
    """Read an MS COCO captions file and its images.

    The file is COCO's `annotations/captions_{train,val}{2014,2017}.json`:
    `{"images": [{"id", "file_name", ...}], "annotations": [{"image_id",
    "caption", ...}]}`. Images are read from `image_dir/file_name` (e.g.
    `val2017/`), decoded with Pillow and resized; captions are tokenized with a
    keras-hub word tokenizer (`make_tokenizer`). Only images with at least one
    caption are loaded, in the order of `"images"`.

    Image paths are confined to `image_dir`: absolute paths and paths that leave it
    through `..` or a symbolic link are refused.

    Args:
        annotations_file: path to the JSON file.
        image_dir: path to the directory holding the images.
        image_size: int or (height, width). Images are resized to it.
        sequence_length: int. Token ids per caption (truncated / padded with 0).
        vocabulary: list of str or None. None builds one from the captions read
            (`build_vocabulary`); pass the training set's to read a test set.
        crop_to_aspect_ratio: bool. Centre-crop to the target aspect ratio before
            resizing (True) or squash the whole image (False).
        max_pixels: int. Images with more pixels (read from the header, before
            decoding) are refused. Default 50,000,000.
        skip_missing: bool. False: a missing, corrupt, truncated or oversized image
            raises `ValueError` naming the file and the record. True: their
            captions are dropped, a warning gives the count and `"num_skipped"`
            holds it; the same for annotations whose `image_id` is not in
            `"images"`. Malformed JSON and escaping paths are always errors.
        max_images: int or None. Read only the first `max_images` captioned
            images and their captions.

    Returns:
        A dict:
        - `"images"`: `(num_images, H, W, 3)` float32 in [0, 1], each image once.
        - `"token_ids"`: `(num_captions, T)` int32; `"padding_mask"`: same shape,
          bool.
        - `"caption_image_index"`: `(num_captions,)` int32, the row of `"images"`
          each caption describes (the ground truth for
          `keras_mm.metrics.retrieval_metrics`, and `image_index` for
          `keras_mm.data.MultimodalPyDataset`).
        - `"captions"`: list of str; `"image_files"`: list of str (as in the
          file); `"image_ids"`: list of int (COCO ids), one per image.
        - `"vocabulary"`: list of str; `"num_skipped"`: int.
    """
    image_size = check_image_args(image_size, max_pixels)
    root = check_dir(image_dir, "image_dir")
    data = read_json(annotations_file, "annotations_file")
    source = str(annotations_file)
    images, files = [], {}
    for i, entry in enumerate(get_list(data, "images", source)):
        where = f"images[{i}]"
        image_id = get_field(entry, "id", "int", source, where)
        file_name = get_field(entry, "file_name", "str", source, where)
        if image_id in files:
            raise ValueError(f"{source}: {where} repeats image id {image_id}.")
        files[image_id] = file_name
        images.append((image_id, file_name, f"{where} (id={image_id})"))
    records, dangling = [], 0
    for i, ann in enumerate(get_list(data, "annotations", source)):
        where = f"annotations[{i}]"
        image_id = get_field(ann, "image_id", "int", source, where)
        caption = get_field(ann, "caption", "str", source, where)
        if image_id not in files:
            dangling += dangling_record(
                source,
                where,
                f"(caption {caption[:60]!r}) points at image_id {image_id}, which "
                'is not in "images".',
                skip_missing,
            )
            continue
        records.append((image_id, caption.strip(), where))
    arrays, _ = build_arrays(
        source,
        root,
        images,
        records,
        image_size,
        sequence_length,
        vocabulary,
        crop_to_aspect_ratio,
        max_pixels,
        skip_missing,
        max_images,
        num_dangling=dangling,
    )
    return caption_output(arrays)
