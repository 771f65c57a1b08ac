"""The scan's fast construction and raw insert of new rows give what Model.__init__ and save() would."""

import pytest
from django.db.models import signals

from adapters.models import Adapter, AdapterFile, Tag
from adapters.scanning import new_instance_factory
from lora_manager.bulk_sql import insert_returning_ids


def test_new_instances_are_what_the_model_would_build():
    for model in (Adapter, AdapterFile):
        assert not signals.pre_init.has_listeners(model) and not signals.post_init.has_listeners(model)
        make = new_instance_factory(model)
        fast, slow = make(size=7), model(size=7)
        state = {k: v for k, v in fast.__dict__.items() if k != "_state"}
        assert state == {k: v for k, v in slow.__dict__.items() if k != "_state"}
        assert fast._state.adding and fast._state.db is None and fast.pk is None


def test_mutable_defaults_are_not_shared():
    make = new_instance_factory(Adapter)
    first, second = make(), make()
    first.trigger_words.append("x")
    first.sources["name"] = "header"
    assert second.trigger_words == [] and second.sources == {}


@pytest.mark.django_db
def test_raw_insert_writes_every_column_and_sets_ids():
    made = new_instance_factory(Adapter)(name="fox", size=3, trigger_words=["a", "é"], sources={"name": "header"})
    tags = [Tag(name="one"), Tag(name="two")]
    insert_returning_ids(Adapter, [made])
    insert_returning_ids(Tag, tags)
    stored = Adapter.objects.get(pk=made.pk)
    assert (stored.name, stored.size, stored.trigger_words) == ("fox", 3, ["a", "é"])
    assert stored.sources == {"name": "header"}
    assert stored.created_at == made.created_at and stored.status == "ok"
    assert sorted(Tag.objects.values_list("pk", "name")) == sorted((t.pk, t.name) for t in tags)
