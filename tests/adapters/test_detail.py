"""The adapter detail page: what it shows, inline edits and their validation, toggles, previews, stale pages."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from adapters import scanning
from adapters.models import Adapter
from tests.adapters.catalog_factory import make_adapter
from tests.adapters.conftest import lora

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def adapter(db):
    return make_adapter(
        "pixel knight",
        alias="pixelknight_v2",
        trigger_words=["pxk"],
        training_tags=[["1girl", 40], ["armor", 12]],
        preferred_weight=0.8,
        weight_min=0.4,
        weight_max=1.2,
        activation_text="pixel art, knight",
        description='<p>Great <script>alert(1)</script><a href="javascript:x()">x</a><b>bold</b></p>',
        header_metadata={"ss_network_dim": "32", "ss_output_name": "pixelknight_v2"},
        tensor_sha256="d" * 64,
        tags=("anime",),
    )


def edit(client, adapter, section: str, data: dict, htmx: bool = True):
    return client.post(f"/library/{adapter.pk}/section/{section}/edit/", data, headers=HTMX if htmx else {})


def png_bytes(size=(32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_detail_shows_every_field_hashes_duplicates_and_copy_buttons(viewer_client, adapter):
    twin = make_adapter("pixel knight resaved", tensor_sha256="d" * 64)
    html = viewer_client.get(f"/library/{adapter.pk}/").content.decode()
    assert f'id="adapter-{adapter.pk}-title"' in html
    assert "&lt;lora:pixelknight_v2:0.8&gt;" in html and 'data-copy="&lt;lora:pixelknight_v2:0.8&gt;"' in html
    assert f'data-copy="{adapter.sha256}"' in html and adapter.autov2 in html
    assert 'data-copy="' + "d" * 64 + '"' in html
    assert adapter.files.get().path in html
    assert "Raw header metadata (2 keys)" in html and "ss_network_dim" in html
    assert "1girl" in html and ">40<" in html  # training tag with its frequency
    assert f'href="/library/{twin.pk}/"' in html  # duplicates
    assert "<b>bold</b>" in html and "<script>" not in html and "javascript:" not in html
    assert "pixel art, knight" in html and "anime" in html
    assert "Edit" not in html.split('id="feedback"')[1].split("Training tags")[0]  # viewers get no edit buttons
    assert 'src="/static/js/gallery.js"' in html


def test_weight_range_reads_as_words_when_empty_or_half_set(viewer_client, adapter):
    def shown(pk: int) -> str:
        html = viewer_client.get(f"/library/{pk}/").content.decode()
        return html.split('id="adapter-weight-range">', 1)[1].split("</dd>", 1)[0]

    assert shown(adapter.pk) == "0.4 to 1.2"
    Adapter.objects.filter(pk=adapter.pk).update(weight_min=None, weight_max=None)
    assert shown(adapter.pk) == '<span class="muted">not set</span>'
    Adapter.objects.filter(pk=adapter.pk).update(weight_max=0.9)
    assert shown(adapter.pk) == "up to 0.9"


def test_two_adapters_behind_one_prompt_tag_are_named_on_the_page(viewer_client, adapter):
    """Issue 15, item 9: two copies both aliased ``inkwash_sd15`` gave the same <lora:…> tag without a word."""

    def warning(pk: int) -> str:
        html = viewer_client.get(f"/library/{pk}/").content.decode()
        return (
            html.split(f'id="adapter-{pk}-shared-token">', 1)[1].split("</p>", 1)[0] if "shared-token" in html else ""
        )

    first = make_adapter("Inkwash A", alias="inkwash_sd15")
    second = make_adapter("Inkwash B", alias="inkwash_sd15")
    assert warning(adapter.pk) == ""  # its alias is its own
    assert warning(first.pk).startswith(f'<a href="/library/{second.pk}/">Inkwash B</a> also answers to this tag')
    assert f"/library/{first.pk}/" in warning(second.pk)
    # No alias: the file's stem is the tag, and another adapter's alias can take it too.
    plain = make_adapter("plain")  # its file: /lib/one/plain-<n>-0.safetensors
    stem = plain.files.get().path.rsplit("/", 1)[1].removesuffix(".safetensors")
    Adapter.objects.filter(pk=second.pk).update(alias=stem)
    assert "Inkwash B</a> also answers" in warning(plain.pk)
    assert warning(first.pk) == ""
    # A file that could not be read is no LoRA and takes no tag.
    Adapter.objects.filter(pk=second.pk).update(status="error")
    assert warning(plain.pk) == ""


def test_editor_edits_a_section_inline(editor_client, adapter):
    form = editor_client.get(f"/library/{adapter.pk}/section/triggers/edit/", headers=HTMX)
    assert form.status_code == 200 and "<form" in form.content.decode() and "pxk" in form.content.decode()
    saved = edit(editor_client, adapter, "triggers", {"trigger_words": "pxk\n  pixel   knight \n\npxk"})
    html = saved.content.decode()
    assert saved.status_code == 200 and f'id="adapter-{adapter.pk}-triggers"' in html and "<form" not in html
    adapter.refresh_from_db()
    assert adapter.trigger_words == ["pxk", "pixel knight"]
    assert adapter.sources["trigger_words"] == "user"
    cancel = editor_client.get(f"/library/{adapter.pk}/section/triggers/", headers=HTMX)
    assert "<form" not in cancel.content.decode()


@pytest.mark.parametrize(
    ("section", "data", "fields"),
    [
        ("name", {"name": "knight", "alias": "kn"}, {"name": "knight", "alias": "kn"}),
        ("weights", {"preferred_weight": "0.7", "weight_min": "-1", "weight_max": "1.5"}, {"preferred_weight": 0.7}),
        ("weights", {"preferred_weight": "", "weight_min": "", "weight_max": ""}, {"weight_max": None}),
        ("texts", {"activation_text": "knight", "negative_text": "blurry"}, {"negative_text": "blurry"}),
        ("notes", {"notes": "works at 0.6"}, {"notes": "works at 0.6"}),
        ("description", {"description": "<p>new</p>"}, {"description": "<p>new</p>"}),
    ],
)
def test_each_section_saves_and_marks_user_edits(editor_client, adapter, section, data, fields):
    response = edit(editor_client, adapter, section, data)
    assert response.status_code == 200
    adapter.refresh_from_db()
    for name, value in fields.items():
        assert getattr(adapter, name) == value
        assert adapter.sources[name] == "user"


def test_name_change_updates_the_title_and_prompt_out_of_band(editor_client, adapter):
    html = edit(editor_client, adapter, "name", {"name": "Knight", "alias": "kn2"}).content.decode()
    assert f'<h1 id="adapter-{adapter.pk}-title" hx-swap-oob="true">Knight' in html
    assert "&lt;lora:kn2:0.8&gt;" in html


def test_tags_are_edited_with_autocomplete(editor_client, adapter):
    form = editor_client.get(f"/library/{adapter.pk}/section/tags/edit/", headers=HTMX).content.decode()
    assert 'list="tag-suggestions"' in form and 'hx-get="/library/tags/suggest/"' in form
    edit(editor_client, adapter, "tags", {"tags": "Anime, Pixel  Art, , retro"})
    assert sorted(t.name for t in adapter.tags.all()) == ["anime", "pixel art", "retro"]
    assert Adapter.objects.get(pk=adapter.pk).sources["tags"] == "user"


@pytest.mark.parametrize(
    ("section", "data", "message"),
    [
        ("weights", {"preferred_weight": "abc"}, "Enter a number"),
        ("weights", {"preferred_weight": "99"}, "less than or equal to 5"),
        ("weights", {"weight_min": "1", "weight_max": "0.5"}, "must not be below the lowest"),
        ("weights", {"preferred_weight": "2", "weight_min": "0", "weight_max": "1"}, "within the range"),
        ("name", {"name": "   ", "alias": ""}, "This field is required"),
        ("name", {"name": "x" * 300, "alias": ""}, "at most 255 characters"),
        ("name", {"name": "ok", "alias": "a:b"}, "cannot contain"),
        ("tags", {"tags": "fine, " + "t" * 10_000}, "at most 100 characters"),
        ("triggers", {"trigger_words": "w" * 300}, "too long"),
        ("texts", {"activation_text": "a" * 6000, "negative_text": ""}, "at most 5000 characters"),
        ("notes", {"notes": "bad\x00byte"}, "Null characters are not allowed"),
    ],
)
def test_invalid_edits_show_an_inline_error_and_change_nothing(editor_client, adapter, section, data, message):
    before = Adapter.objects.get(pk=adapter.pk)
    tags_before = sorted(t.name for t in adapter.tags.all())
    response = edit(editor_client, adapter, section, data)
    assert response.status_code == 422
    html = response.content.decode()
    assert message in html and "<form" in html and f'id="adapter-{adapter.pk}-{section}"' in html
    after = Adapter.objects.get(pk=adapter.pk)
    for field in ("name", "alias", "preferred_weight", "weight_min", "weight_max", "trigger_words", "notes", "sources"):
        assert getattr(after, field) == getattr(before, field)
    assert sorted(t.name for t in adapter.tags.all()) == tags_before


def test_without_htmx_edits_are_plain_pages(editor_client, adapter):
    response = editor_client.get(f"/library/{adapter.pk}/section/notes/edit/")
    assert response.status_code == 302 and response["Location"].endswith(f"?edit=notes#adapter-{adapter.pk}-notes")
    page = editor_client.get(f"/library/{adapter.pk}/?edit=notes").content.decode()
    assert 'name="notes"' in page
    response = edit(editor_client, adapter, "notes", {"notes": "hello"}, htmx=False)
    assert response.status_code == 302
    response = edit(editor_client, adapter, "weights", {"preferred_weight": "abc"}, htmx=False)
    assert response.status_code == 422 and "<html" in response.content.decode()


def test_toggles_from_a_card_a_row_and_the_detail_page(editor_client, adapter):
    url = f"/library/{adapter.pk}/toggle/favorite/"
    card = editor_client.post(url, {"value": "1"}, headers={**HTMX, "HX-Target": f"adapter-{adapter.pk}-card"})
    assert card.content.decode().startswith(f'<article id="adapter-{adapter.pk}-card"')
    assert Adapter.objects.get(pk=adapter.pk).favorite
    row = editor_client.post(url, {"value": "0"}, headers={**HTMX, "HX-Target": f"adapter-{adapter.pk}-row"})
    assert row.content.decode().startswith(f'<tr id="adapter-{adapter.pk}-row"')
    flags = editor_client.post(f"/library/{adapter.pk}/toggle/active/", {"value": "0"}, headers=HTMX)
    assert f'id="adapter-{adapter.pk}-flags"' in flags.content.decode()
    assert not Adapter.objects.get(pk=adapter.pk).active
    assert editor_client.post(f"/library/{adapter.pk}/toggle/name/", {"value": "1"}).status_code == 404
    plain = editor_client.post(url, {"value": "1", "next": "https://evil.example/"})
    assert plain.status_code == 302 and plain["Location"] == f"/library/{adapter.pk}/"


def test_training_tag_click_adds_a_trigger_word_once(editor_client, adapter):
    url = f"/library/{adapter.pk}/trigger-words/"
    html = editor_client.post(url, {"word": "armor"}, headers=HTMX).content.decode()
    assert f'id="adapter-{adapter.pk}-triggers"' in html and "armor" in html
    editor_client.post(url, {"word": "armor"}, headers=HTMX)
    adapter.refresh_from_db()
    assert adapter.trigger_words == ["pxk", "armor"] and adapter.sources["trigger_words"] == "user"
    bad = editor_client.post(url, {"word": "  "}, headers=HTMX)
    assert bad.status_code == 422 and bad["HX-Retarget"] == "#feedback"


def test_preview_upload_and_replace(editor_client, adapter, settings, tmp_path):
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    image = SimpleUploadedFile("p.png", png_bytes(), content_type="image/png")
    response = edit(editor_client, adapter, "image", {"image": image})
    assert response.status_code == 200
    adapter.refresh_from_db()
    assert adapter.preview_source == "upload" and adapter.preview_key and adapter.sources["preview"] == "user"
    assert f"/library/{adapter.pk}/preview/large?v=" in response.content.decode()
    served = editor_client.get(f"/library/{adapter.pk}/preview/card")
    assert served.status_code == 200 and served["Content-Type"] == "image/webp"
    first = adapter.preview_key
    edit(editor_client, adapter, "image", {"image": SimpleUploadedFile("q.png", png_bytes((40, 40)))})
    adapter.refresh_from_db()
    assert adapter.preview_key != first


def test_preview_upload_refuses_non_images_and_oversized_files(editor_client, adapter, settings, tmp_path):
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    response = edit(editor_client, adapter, "image", {"image": SimpleUploadedFile("x.png", b"not an image at all")})
    assert response.status_code == 422 and "Not a usable image: not an image" in response.content.decode()
    settings.MAX_PREVIEW_UPLOAD_BYTES = 40
    response = edit(editor_client, adapter, "image", {"image": SimpleUploadedFile("p.png", png_bytes())})
    assert response.status_code == 422 and "the limit is 40" in response.content.decode()
    assert Adapter.objects.get(pk=adapter.pk).preview_key == ""


def test_stale_pages_get_a_clear_message(editor_client, adapter):
    pk = adapter.pk
    Adapter.objects.filter(pk=pk).delete()
    page = editor_client.get(f"/library/{pk}/")
    assert page.status_code == 404 and "no longer in the catalog" in page.content.decode()
    for response in (
        edit(editor_client, adapter, "notes", {"notes": "x"}),
        editor_client.post(f"/library/{pk}/toggle/favorite/", {"value": "1"}, headers=HTMX),
        editor_client.post(f"/library/{pk}/trigger-words/", {"word": "x"}, headers=HTMX),
    ):
        assert response.status_code == 404
        assert response["HX-Retarget"] == "#feedback"
        assert "no longer in the catalog" in response.content.decode()


def test_viewers_cannot_reach_edit_endpoints(viewer_client, adapter):
    pk = adapter.pk
    assert viewer_client.get(f"/library/{pk}/").status_code == 200
    assert viewer_client.get(f"/library/{pk}/section/notes/edit/").status_code == 403
    assert viewer_client.post(f"/library/{pk}/section/notes/edit/", {"notes": "x"}).status_code == 403
    assert viewer_client.post(f"/library/{pk}/toggle/favorite/", {"value": "1"}).status_code == 403
    assert viewer_client.post(f"/library/{pk}/trigger-words/", {"word": "x"}).status_code == 403
    image = SimpleUploadedFile("p.png", png_bytes())
    assert viewer_client.post(f"/library/{pk}/section/image/edit/", {"image": image}).status_code == 403
    assert Adapter.objects.get(pk=pk).notes == ""


def test_unknown_sections_are_404(editor_client, adapter):
    assert editor_client.get(f"/library/{adapter.pk}/section/sha256/edit/").status_code == 404
    assert editor_client.get(f"/library/{adapter.pk}/section/sha256/").status_code == 404


def test_a_rescan_keeps_what_the_user_edited(editor_client, library):
    lora(library, "knight.safetensors", ss_tag_frequency='{"5_k": {"sword": 3}}')
    scanning.scan()
    adapter = Adapter.objects.get()
    edit(editor_client, adapter, "triggers", {"trigger_words": "my trigger"})
    edit(editor_client, adapter, "weights", {"preferred_weight": "0.65"})
    Adapter.objects.filter(pk=adapter.pk).update()  # nothing else changes
    adapter.files.update(mtime_ns=-1)  # force a re-read
    scanning.scan()
    adapter.refresh_from_db()
    assert adapter.trigger_words == ["my trigger"] and adapter.preferred_weight == 0.65
