import numpy as np
import pytest

from keras_mm.data import read_flickr30k_captions
from tests.data.reader_fixtures import write_image

TOKEN = (
    "1000092795.jpg#0\tTwo young guys with shaggy hair look at their hands .\n"
    "1000092795.jpg#1\tTwo young , White males are outside near many bushes .\n"
    "\n"
    "10002456.jpg#0\tSeveral men in hard hats are operating a giant pulley system .\n"
)
CSV = (
    "image,caption\n"
    "1000092795.jpg,Two young guys with shaggy hair look at their hands .\n"
    '1000092795.jpg,"Two young , White males are outside near many bushes ."\n'
    "10002456.jpg,Several men in hard hats are operating a giant pulley system .\n"
)
PIPE = (
    "image_name| comment_number| comment\n"
    "1000092795.jpg| 0| Two young guys with shaggy hair look at their hands .\n"
    "1000092795.jpg| 1| Two young , White males are outside near many bushes .\n"
    "10002456.jpg| 0| Several men in hard hats are operating a giant pulley system .\n"
)


@pytest.mark.parametrize(
    "name, text",
    [("results_20130124.token", TOKEN), ("captions.txt", CSV), ("results.csv", PIPE)],
)
def test_reads_every_layout(tmp_path, name, text):
    images = tmp_path / "flickr30k-images"
    write_image(str(images / "1000092795.jpg"), (255, 0, 0))
    write_image(str(images / "10002456.jpg"), (0, 0, 255))
    (tmp_path / name).write_text(text)
    data = read_flickr30k_captions(str(tmp_path / name), str(images), image_size=5)
    assert data["image_ids"] == ["1000092795.jpg", "10002456.jpg"]
    assert (
        data["captions"][1] == "Two young , White males are outside near many bushes ."
    )
    np.testing.assert_array_equal(data["caption_image_index"], [0, 0, 1])
    np.testing.assert_allclose(data["images"][1].mean((0, 1)), [0, 0, 1], atol=0.02)
    assert data["token_ids"].shape == (3, 32)
    assert "," in data["vocabulary"]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("r.token", "1000092795.jpg#0 no tab here\n", r"r.token: line 1: expected"),
        ("r.token", TOKEN + "noindex.jpg\tcaption\n", "line 5"),
        ("c.txt", CSV + "only_one_field\n", "c.txt: line 5"),
        ("c.txt", CSV + "a.jpg,\n", "line 5"),
        ("p.csv", PIPE + "a.jpg| 0\n", "p.csv: line 5"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, name, text, message):
    write_image(str(tmp_path / "1000092795.jpg"))
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        read_flickr30k_captions(str(tmp_path / name), str(tmp_path), image_size=4)


def test_missing_image_names_the_line(tmp_path):
    write_image(str(tmp_path / "1000092795.jpg"))
    (tmp_path / "r.token").write_text(TOKEN)
    with pytest.raises(
        ValueError, match=r"10002456.jpg: image file not found \(line 4"
    ):
        read_flickr30k_captions(str(tmp_path / "r.token"), str(tmp_path), image_size=4)
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        data = read_flickr30k_captions(
            str(tmp_path / "r.token"), str(tmp_path), image_size=4, skip_missing=True
        )
    assert data["num_skipped"] == 1 and len(data["captions"]) == 2
