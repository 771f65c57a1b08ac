"""Files the scanner could not read are not LoRAs (issue 15, item 4): the composer neither offers them in
its search or popular list nor adds them through an "Open in composer" link or a row request."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from adapters.models import Adapter, AdapterStatus
from adapters.scanning import scan
from tests.factories.lora_files import write_raw

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def offered(client, query: str) -> list[str]:
    html = client.get(reverse("generation:lora_search"), {"q": query}, **HTMX).content.decode()
    return re.findall(r'aria-label="Add ([^"]+)"', html)


@pytest.fixture
def zero(lora_root: Path, catalog) -> Adapter:
    """An empty ``.safetensors`` next to the catalog's three readable LoRAs, scanned like them."""
    write_raw(lora_root / "broken/zero.safetensors", b"")
    scan([str(lora_root)])
    broken = Adapter.objects.get(files__path__endswith="zero.safetensors")
    assert broken.status == AdapterStatus.ERROR
    return broken


def test_the_composer_search_and_popular_list_leave_unreadable_files_out(viewer_client, zero, catalog):
    assert offered(viewer_client, "zero") == []
    Adapter.objects.filter(pk=zero.pk).update(usage_count=99)  # used often before it broke: still not offered
    popular = offered(viewer_client, "")
    assert "zero" not in popular and set(popular) == set(catalog)


def test_open_in_composer_skips_an_unreadable_file_and_says_why(viewer_client, zero, catalog):
    ink = catalog["ink_sd15"]
    response = viewer_client.get(reverse("generation:compose"), {"adapter": [zero.pk, ink.pk]})
    html = response.content.decode()
    assert response.status_code == 200
    assert re.findall(r'<strong class="lora-name">([^<]+)</strong>', html) == ["ink_sd15"]
    assert "zero" not in re.sub(r"<[^>]+>", " ", html.split('id="final-prompt"', 1)[1].split("</", 1)[0])
    assert "“zero” could not be read (see Files with problems): not added." in html


def test_a_row_for_an_unreadable_file_is_refused_with_a_reason(viewer_client, zero, catalog):
    response = viewer_client.get(reverse("generation:lora_row"), {"adapter": zero.pk}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 409  # swapped under the rows by htmx (static/js/htmx-errors.js), not dropped
    assert "“zero” could not be read" in html and reverse("adapters:problems") in html and "lora-row" not in html
    good = viewer_client.get(reverse("generation:lora_row"), {"adapter": catalog["ink_sd15"].pk}, **HTMX)
    assert good.status_code == 200 and 'class="lora-row"' in good.content.decode()
