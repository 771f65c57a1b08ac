"""What a real library needs from the catalog: unreadable files kept apart, previews that are not images,
folder navigation, a first scan by itself, a progress bar that moves, one way to show values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from adapters import display, facets, gallery, gallery_filter, scan_runs, scanning
from adapters.models import Adapter, AdapterStatus, LibraryRoot, ScanRun
from lora_manager.dashboard import figures as dashboard
from tests.adapters.conftest import age, lora
from tests.factories.library import write_library
from tests.factories.lora_files import write_raw
from tests.factories.sidecars import write_preview, write_sidecar_raw

pytestmark = pytest.mark.django_db


def test_unreadable_files_are_kept_with_their_reason_but_are_not_adapters(library, client, viewer):
    lora(library, "good.safetensors", seed=1)
    write_raw(library / "broken/zero.safetensors", b"")
    write_raw(library / "broken/truncated.safetensors", b'{"__metadata__":{"x', header_length=4096)
    age(*library.rglob("*.safetensors"))
    scanning.scan()
    assert Adapter.objects.count() == 3  # kept: a rescan stays incremental and the reason is stored
    assert list(Adapter.objects.usable().values_list("name", flat=True)) == ["good"]
    assert Adapter.objects.unreadable().count() == 2
    assert all(a.issues for a in Adapter.objects.unreadable())
    assert gallery.total("") == 1
    figures = dashboard.library()
    assert figures["total"] == 1 and figures["unreadable_files"] == 2
    assert dashboard.usage()["never_used_count"] == 1

    client.force_login(viewer)
    page = client.get("/library/problems/").content.decode()
    assert "zero.safetensors" in page and "truncated.safetensors" in page and "good.safetensors" not in page
    assert 'href="/library/problems/"' in client.get("/library/").content.decode()


def test_a_preview_sidecar_that_is_not_an_image_is_not_the_preview(library):
    model = lora(library, "knight.safetensors", seed=2)
    write_sidecar_raw(model, ".preview.png", "just text, not a picture\n")
    other = lora(library, "witch.safetensors", seed=3)
    write_sidecar_raw(other, ".png", b"")  # an empty first choice, then a real thumbnail
    write_preview(other, "thumb.webp", size=(32, 32))
    age(*library.iterdir())
    scanning.scan()
    knight = Adapter.objects.get(name="knight")
    assert knight.preview_source == "" and knight.has_issues
    assert any("knight.preview.png: not an image" in issue for issue in knight.issues)
    from adapters.info import adapter_info

    assert adapter_info(Adapter.objects.prefetch_related("files", "tags").get(pk=knight.pk))["has_preview"] is False
    witch = Adapter.objects.get(name="witch")
    assert witch.preview_source.endswith("witch.thumb.webp")
    assert any("witch.png: empty file" in issue for issue in witch.issues)

    # A preview that was fine and is then replaced by text stops being the preview on the next scan.
    write_preview(model, "png", size=(16, 16))
    age(*library.iterdir())
    scanning.scan()
    assert Adapter.objects.get(name="knight").preview_source.endswith("knight.png")
    (library / "knight.png").write_text("now text")
    age(*library.iterdir())
    scanning.scan()
    assert Adapter.objects.get(name="knight").preview_source == ""


def test_folder_tree_and_filter_from_stored_paths(library):
    written = write_library(library, count=40)
    scanning.scan()
    root = LibraryRoot.objects.get()
    everything = gallery.results(gallery.parse(QueryDict(""))).facets
    rows = {row["value"]: row for row in everything.folder_tree if "value" in row}
    assert rows[f"{root.pk}:"]["count"] == len(written.good)
    assert rows[f"{root.pk}:sdxl"]["count"] == written.count_under("sdxl")
    assert f"{root.pk}:sdxl/pony" not in rows  # closed until its parent is chosen
    assert f"{root.pk}:broken" not in rows  # only unreadable files there: no adapters to browse

    query = gallery.parse(QueryDict(f"folder={root.pk}:sdxl"))
    result = gallery.results(query)
    assert result.facets.total == written.count_under("sdxl")
    tree = {row["value"]: row for row in result.facets.folder_tree if "value" in row}
    assert tree[f"{root.pk}:sdxl"]["current"] and tree[f"{root.pk}:sdxl/pony"]["count"] == written.count_under(
        "sdxl/pony"
    )
    assert tree[f"{root.pk}:sd15"]["count"] == written.count_under("sd15")  # siblings keep their counts
    assert query.querystring() == f"folder={root.pk}%3Asdxl"
    in_sdxl = {p.stem for p in written.good if "/sdxl/" in p.as_posix()}
    assert {a.name for a in result.page} <= in_sdxl | {a.name for a in Adapter.objects.all()}
    ids = gallery.matching_ids(f"folder={root.pk}:sdxl/pony")
    paths = Adapter.objects.filter(pk__in=ids).values_list("files__path", flat=True)
    assert len(ids) == written.count_under("sdxl/pony") and all("/sdxl/pony/" in p for p in paths)
    # "sdxl" does not match a sibling folder whose name merely starts the same way.
    lora(library, "sdxl-extra/other.safetensors", seed=99)
    scanning.scan()
    assert gallery.total(f"folder={root.pk}:sdxl") == written.count_under("sdxl")
    assert gallery.total(f"folder={root.pk}:sdxl-extra") == 1


@pytest.mark.parametrize("raw", ["x:sdxl", "1", "1:../etc", "99999999999999999999:a"])
def test_bad_folder_values_are_ignored_with_a_notice(raw):
    query = gallery.parse(QueryDict(f"folder={raw}"))
    assert query.folder is None and query.notices


def test_folder_of_path_and_bounds():
    assert facets.folder_of_path("/lib", "/lib/a/b/c.safetensors") == "a/b"
    assert facets.folder_of_path("/lib/", "/lib/c.safetensors") == ""
    assert gallery_filter.folder_bounds("/lib", "a/b") == ("/lib/a/b/", "/lib/a/b0")
    assert gallery_filter.folder_bounds("/lib", "") == ("/lib/", "/lib0")


def test_first_scan_starts_by_itself_only_on_a_new_install(settings, library, redis_conn):
    settings.LIBRARY_DIRS = []
    assert scan_runs.start_first_scan() is None  # no library folders configured
    settings.LIBRARY_DIRS = [library]
    run = scan_runs.start_first_scan()
    assert run is not None and run.status == ScanRun.Status.QUEUED
    assert scan_runs.start_first_scan() == run  # the queued one, not a second
    ScanRun.objects.filter(pk=run.pk).update(status=ScanRun.Status.SUCCEEDED)
    assert scan_runs.start_first_scan() is None  # scanned before (even if it found nothing)


def test_first_scan_is_not_started_when_the_catalog_has_files(settings, library, redis_conn):
    lora(library, "one.safetensors")
    scanning.scan()
    settings.LIBRARY_DIRS = [library]
    assert scan_runs.start_first_scan() is None


def test_scan_bar_moves_through_every_phase():
    run = ScanRun(status=ScanRun.Status.RUNNING, hash_files=True)
    seen = []
    for phase, done, total in [("listing", 0, 0), ("reading", 6, 12), ("reading", 12, 12), ("hashing", 6, 12)]:
        run.phase, run.done, run.total = phase, done, total
        seen.append(run.percent)
    run.phase, run.done, run.total = "thumbnails", 0, 0
    seen.append(run.percent)
    assert seen == sorted(seen) and 0 < seen[1] < seen[2] < seen[3] < 100
    run.status = ScanRun.Status.SUCCEEDED
    assert run.percent == 100


def test_one_label_per_base_model_and_human_dates(settings):
    assert display.base_model_label("SD1") == "SD 1.x" and display.base_model_label("") == "Unknown"
    assert display.base_model_label("Pony") == "Pony"  # a value an older version stored: as it is
    now = timezone.now()
    assert display.human_datetime(now).startswith("today ")
    assert display.human_datetime((now - timedelta(days=1)).isoformat()).startswith("yesterday ")
    assert display.human_datetime(None) == "–"
    old = display.human_datetime(now - timedelta(days=400))
    assert "T" not in old and ":" in old


def test_admin_lists_readable_sizes_sorts_names_ignoring_case_and_only_removes_through_the_catalog(
    client, admin_user, library
):
    for name in ("beta", "Alpha", "gamma"):
        lora(library, f"{name}.safetensors", seed=len(name) + ord(name[0]))
    scanning.scan()
    client.force_login(admin_user)
    response = client.get("/admin/adapters/adapter/")
    html = response.content.decode()
    names = [row.name for row in response.context["cl"].result_list]
    assert names == ["Alpha", "beta", "gamma"]
    assert "delete_selected" not in html and '<option value="remove">' in html
    assert "KB" in html or "MB" in html
    assert Adapter.objects.filter(status=AdapterStatus.OK).count() == 3
