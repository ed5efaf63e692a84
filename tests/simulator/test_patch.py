"""The simulator's PATCH flavours: JSON patch, merge patch, strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.simulator.patch import (
    STRATEGIC_MERGE_KINDS,
    PatchError,
    UnsupportedPatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "llm-serve",
            "namespace": "serving",
            "labels": {"app": "llm-serve", "tier": "gpu"},
            "annotations": {"example.com/owner": "ml", "a~b": "tilde"},
            "finalizers": ["example.com/keep"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "llm-serve"}},
            "template": {
                "metadata": {"labels": {"app": "llm-serve"}},
                "spec": {
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.6.3",
                            "args": ["--model", "m", "--dtype", "bfloat16"],
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "value": "1"},
                                {"name": "C", "value": "1"},
                            ],
                            "ports": [{"containerPort": 8000, "name": "http"}],
                            "volumeMounts": [{"name": "cache", "mountPath": "/root/.cache"}],
                        },
                        {"name": "metrics", "image": "exporter:1"},
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                },
            },
        },
    }


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _env(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["name"], e["value"]) for e in _pod_spec(obj)["containers"][0]["env"]]


def _node() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-node-1", "labels": {"nvidia.com/gpu.product": "H100"}},
        "spec": {"taints": [{"key": "old", "value": "x", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.5"},
                {"type": "Hostname", "address": "gpu-node-1"},
            ],
        },
    }


# --------------------------------------------------------------------------- JSON patch


def test_json_patch_replace_add_remove_on_a_deployment() -> None:
    patched = apply_json_patch(
        _deployment(),
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 4},
            {"op": "add", "path": "/metadata/labels/track", "value": "canary"},
            {"op": "remove", "path": "/metadata/labels/tier"},
        ],
    )
    assert patched["spec"]["replicas"] == 4
    assert patched["metadata"]["labels"] == {"app": "llm-serve", "track": "canary"}


def test_json_patch_array_indices_and_dash_append() -> None:
    patched = apply_json_patch(
        _deployment(),
        [
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--x"},
            {"op": "add", "path": "/spec/template/spec/containers/0/args/0", "value": "serve"},
            {"op": "remove", "path": "/spec/template/spec/containers/1"},
        ],
    )
    containers = _pod_spec(patched)["containers"]
    assert [c["name"] for c in containers] == ["vllm"]
    assert containers[0]["args"] == ["serve", "--model", "m", "--dtype", "bfloat16", "--x"]


def test_json_patch_pointer_escapes_reach_slash_and_tilde_keys() -> None:
    patched = apply_json_patch(
        _deployment(),
        [
            {"op": "replace", "path": "/metadata/annotations/example.com~1owner", "value": "infra"},
            {"op": "remove", "path": "/metadata/annotations/a~0b"},
        ],
    )
    assert patched["metadata"]["annotations"] == {"example.com/owner": "infra"}


def test_json_patch_move_and_copy() -> None:
    patched = apply_json_patch(
        _deployment(),
        [
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copied"},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/annotations/tier"},
        ],
    )
    assert patched["metadata"]["labels"] == {"app": "llm-serve", "copied": "llm-serve"}
    assert patched["metadata"]["annotations"]["tier"] == "gpu"


def test_json_patch_replace_of_missing_key_is_rejected_with_the_path() -> None:
    with pytest.raises(PatchError) as info:
        apply_json_patch(_deployment(), [{"op": "replace", "path": "/spec/foo", "value": 1}])
    assert str(info.value) == (
        "jsonpatch replace operation does not apply: doc is missing key: /spec/foo"
    )


@pytest.mark.parametrize(
    ("ops", "fragment"),
    [
        ([{"op": "remove", "path": "/metadata/labels/nope"}], "doc is missing path"),
        ([{"op": "add", "path": "/spec/nope/deeper", "value": 1}], "doc is missing path"),
        ([{"op": "add", "path": "/spec/template/spec/containers/9", "value": {}}], "index"),
        ([{"op": "add", "path": "/spec/template/spec/containers/01", "value": {}}], "index"),
        ([{"op": "move", "from": "/spec/nope", "path": "/spec/x"}], "missing from path"),
        ([{"op": "move", "from": "/spec", "path": "/spec/template/x"}], "child"),
        ([{"op": "test", "path": "/spec/replicas", "value": 3}], "test failed"),
        ([{"op": "explode", "path": "/spec"}], "unexpected operation"),
        ([{"op": "add", "path": "/spec/x"}], 'missing "value"'),
        ([{"op": "replace", "value": 1}], 'missing "path"'),
        ([{"op": "add", "path": "spec", "value": 1}], "JSON pointer"),
        ([{"op": "remove", "path": ""}], "whole document"),
        ([{"op": "replace", "path": "", "value": [1]}], "not a JSON object"),
    ],
)
def test_json_patch_errors(ops: list[Any], fragment: str) -> None:
    with pytest.raises(PatchError) as info:
        apply_json_patch(_deployment(), ops)
    assert fragment in str(info.value)


def test_json_patch_test_tells_booleans_from_numbers() -> None:
    doc = {"spec": {"paused": True, "replicas": 1}}
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "test", "path": "/spec/paused", "value": 1}])
    assert apply_json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 1.0}]) == doc


def test_json_patch_rejects_a_body_that_is_not_a_list() -> None:
    with pytest.raises(PatchError):
        apply_json_patch(_deployment(), {"op": "add"})  # type: ignore[arg-type]


def test_json_patch_is_all_or_nothing_and_never_mutates_input() -> None:
    doc, ops = (
        _deployment(),
        [
            {"op": "add", "path": "/metadata/labels/new", "value": {"nested": [1]}},
            {"op": "replace", "path": "/spec/missing", "value": 1},
        ],
    )
    before_doc, before_ops = copy.deepcopy(doc), copy.deepcopy(ops)
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)
    assert doc == before_doc
    patched = apply_json_patch(doc, ops[:1])
    patched["metadata"]["labels"]["new"]["nested"].append(2)
    assert doc == before_doc and ops == before_ops


# --------------------------------------------------------------------------- merge patch


def test_merge_patch_null_deletes_maps_merge_lists_replace() -> None:
    patched = apply_merge_patch(
        _deployment(),
        {
            "metadata": {"labels": {"tier": None, "track": "stable"}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "i"}]}}},
        },
    )
    assert patched["metadata"]["labels"] == {"app": "llm-serve", "track": "stable"}
    assert _pod_spec(patched)["containers"] == [{"name": "only", "image": "i"}]
    assert _pod_spec(patched)["volumes"] == [{"name": "cache", "emptyDir": {}}]


def test_merge_patch_drops_nulls_inside_new_objects_and_replaces_scalars_with_maps() -> None:
    patched = apply_merge_patch(
        {"spec": {"strategy": "Recreate"}},
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": None}}},
    )
    assert patched == {"spec": {"strategy": {"type": "RollingUpdate"}}}


def test_merge_patch_requires_an_object_and_never_mutates_input() -> None:
    doc, patch = _deployment(), {"spec": {"template": {"metadata": {"labels": {"x": "y"}}}}}
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    patched = apply_merge_patch(doc, patch)
    patched["spec"]["template"]["metadata"]["labels"]["z"] = "w"
    assert doc == before_doc and patch == before_patch
    with pytest.raises(PatchError):
        apply_merge_patch(doc, ["not", "an", "object"])


# --------------------------------------------------------------------------- kubectl shapes


def test_kubectl_set_env_update_keeps_order_and_other_containers() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}, {"name": "metrics"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                            "env": [{"name": "B", "value": "2"}],
                            "name": "vllm",
                        }
                    ],
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert _env(patched) == [("A", "1"), ("B", "2"), ("C", "1")]
    containers = _pod_spec(patched)["containers"]
    assert [c["name"] for c in containers] == ["vllm", "metrics"]
    assert containers[0]["image"] == "vllm/vllm-openai:v0.6.3"
    assert containers[0]["ports"] == [{"containerPort": 8000, "name": "http"}]
    assert "$setElementOrder/env" not in containers[0]
    assert "$setElementOrder/containers" not in _pod_spec(patched)


def test_kubectl_set_env_brief_shape_on_a_single_container() -> None:
    doc = _deployment()
    _pod_spec(doc)["containers"] = [
        {"name": "vllm", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}]}
    ]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                            "env": [{"name": "B", "value": "2"}],
                            "name": "vllm",
                        }
                    ],
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(doc, patch, "Deployment")
    assert _pod_spec(patched)["containers"] == [
        {"name": "vllm", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    ]


def test_kubectl_set_env_adding_a_variable_lands_where_set_element_order_says() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}, {"name": "metrics"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [
                                {"name": "A"},
                                {"name": "B"},
                                {"name": "C"},
                                {"name": "VLLM_USE_V1"},
                            ],
                            "env": [{"name": "VLLM_USE_V1", "value": "0"}],
                            "name": "vllm",
                        }
                    ],
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert _env(patched) == [("A", "1"), ("B", "1"), ("C", "1"), ("VLLM_USE_V1", "0")]


def test_kubectl_set_env_removing_a_variable_uses_patch_delete() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}, {"name": "metrics"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                            "env": [{"$patch": "delete", "name": "B"}],
                            "name": "vllm",
                        }
                    ],
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert _env(patched) == [("A", "1"), ("C", "1")]


def test_kubectl_set_image_changes_only_that_container() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}, {"name": "metrics"}],
                    "containers": [{"image": "vllm/vllm-openai:v0.6.4", "name": "vllm"}],
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    images = [(c["name"], c["image"]) for c in _pod_spec(patched)["containers"]]
    assert images == [("vllm", "vllm/vllm-openai:v0.6.4"), ("metrics", "exporter:1")]
    assert _env(patched) == [("A", "1"), ("B", "1"), ("C", "1")]


def test_kubectl_cordon_and_uncordon() -> None:
    cordoned = apply_strategic_merge_patch(_node(), {"spec": {"unschedulable": True}}, "Node")
    assert cordoned["spec"]["unschedulable"] is True
    uncordoned = apply_strategic_merge_patch(cordoned, {"spec": {"unschedulable": None}}, "Node")
    assert "unschedulable" not in uncordoned["spec"]
    assert uncordoned["spec"]["taints"] == _node()["spec"]["taints"]


def test_kubectl_taint_replaces_the_taint_list_atomically() -> None:
    taints = [
        {"effect": "NoSchedule", "key": "old", "value": "x"},
        {"effect": "NoExecute", "key": "skew", "value": "quarantine"},
    ]
    patched = apply_strategic_merge_patch(_node(), {"spec": {"taints": taints}}, "Node")
    assert patched["spec"]["taints"] == taints
    removed = apply_strategic_merge_patch(patched, {"spec": {"taints": taints[1:]}}, "Node")
    assert removed["spec"]["taints"] == taints[1:]


# --------------------------------------------------------------------------- list semantics


def test_atomic_lists_are_replaced_not_merged() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                    "containers": [{"name": "vllm", "args": ["--model", "other"]}],
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert _pod_spec(patched)["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert _pod_spec(patched)["containers"][0]["args"] == ["--model", "other"]


def test_merge_by_key_updates_in_place_and_keeps_live_order() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "metrics", "image": "e:2"}]}}}}
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    containers = _pod_spec(patched)["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("vllm", "vllm/vllm-openai:v0.6.3"),
        ("metrics", "e:2"),
    ]


def test_new_list_item_without_element_order_goes_first_as_on_a_real_server() -> None:
    # `kubectl patch -p` with a new container: the API server puts it before the live ones.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "p"}]}}}}
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert [c["name"] for c in _pod_spec(patched)["containers"]] == ["proxy", "vllm", "metrics"]


def test_server_only_items_keep_their_live_position_under_set_element_order() -> None:
    # The client read [A, C]; someone added B since. B stays between A and C.
    doc = _deployment()
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                            "env": [{"name": "C", "value": "3"}],
                            "name": "vllm",
                        }
                    ]
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(doc, patch, "Deployment")
    assert _env(patched) == [("A", "1"), ("B", "1"), ("C", "3")]


def test_set_element_order_can_reorder_without_content_changes() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {"$setElementOrder/containers": [{"name": "metrics"}, {"name": "vllm"}]}
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert [c["name"] for c in _pod_spec(patched)["containers"]] == ["metrics", "vllm"]


def test_set_element_order_that_disagrees_with_the_patch_list_is_rejected() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}],
                    "containers": [{"name": "metrics", "image": "x"}],
                }
            }
        }
    }
    with pytest.raises(PatchError, match=r"doesn't match \$setElementOrder"):
        apply_strategic_merge_patch(_deployment(), patch, "Deployment")


def test_patch_delete_in_a_list_element_removes_it() -> None:
    patch = {
        "spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "metrics"}]}}}
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert [c["name"] for c in _pod_spec(patched)["containers"]] == ["vllm"]


def test_patch_delete_needs_the_merge_key() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [{"$patch": "delete"}]}}}}
    with pytest.raises(PatchError, match="does not contain declared merge key: name"):
        apply_strategic_merge_patch(_deployment(), patch, "Deployment")


def test_list_item_without_merge_key_is_rejected() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}
    with pytest.raises(PatchError, match="merge key: name"):
        apply_strategic_merge_patch(_deployment(), patch, "Deployment")


def test_patch_replace_in_a_list_replaces_the_whole_list() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {"$patch": "replace"},
                        {"name": "models", "persistentVolumeClaim": {"claimName": "m"}},
                    ]
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert _pod_spec(patched)["volumes"] == [
        {"name": "models", "persistentVolumeClaim": {"claimName": "m"}}
    ]


def test_patch_merge_in_a_list_is_refused_like_the_real_server() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [{"$patch": "merge", "name": "cache"}]}}}}
    with pytest.raises(PatchError, match="merging lists cannot yet be specified"):
        apply_strategic_merge_patch(_deployment(), patch, "Deployment")


def test_patch_replace_and_delete_inside_maps() -> None:
    replaced = apply_strategic_merge_patch(
        _deployment(), {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}, "Deployment"
    )
    assert replaced["metadata"]["labels"] == {"only": "this"}
    deleted = apply_strategic_merge_patch(
        _deployment(), {"metadata": {"annotations": {"$patch": "delete"}}}, "Deployment"
    )
    assert deleted["metadata"]["annotations"] == {}
    assert deleted["metadata"]["labels"] == _deployment()["metadata"]["labels"]


def test_unknown_patch_directive_in_a_map_is_rejected() -> None:
    with pytest.raises(PatchError, match="unknown patch type: explode"):
        apply_strategic_merge_patch(
            _deployment(), {"metadata": {"labels": {"$patch": "explode"}}}, "Deployment"
        )


def test_null_deletes_a_key_and_nulls_in_new_objects_are_dropped() -> None:
    patch = {
        "metadata": {"labels": {"tier": None}},
        "spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}},
    }
    patched = apply_strategic_merge_patch(_deployment(), patch, "Deployment")
    assert patched["metadata"]["labels"] == {"app": "llm-serve"}
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_clears_fields_not_listed() -> None:
    doc = _deployment()
    doc["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    patched = apply_strategic_merge_patch(doc, patch, "Deployment")
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_list_every_patched_field() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}
    with pytest.raises(PatchError, match="retainKeys"):
        apply_strategic_merge_patch(_deployment(), patch, "Deployment")


def test_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    added = apply_strategic_merge_patch(
        _deployment(), {"metadata": {"finalizers": ["example.com/keep", "b/c"]}}, "Deployment"
    )
    assert sorted(added["metadata"]["finalizers"]) == ["b/c", "example.com/keep"]
    removed = apply_strategic_merge_patch(
        added,
        {
            "metadata": {
                "$setElementOrder/finalizers": ["b/c"],
                "$deleteFromPrimitiveList/finalizers": ["example.com/keep"],
            }
        },
        "Deployment",
    )
    assert removed["metadata"]["finalizers"] == ["b/c"]
    assert not any(k.startswith("$") for k in removed["metadata"])


def test_pod_lists_merge_by_their_kubernetes_keys() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "ownerReferences": [{"uid": "u1", "name": "rs-1"}]},
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "ports": [{"containerPort": 8000, "name": "http"}],
                    "volumeMounts": [{"mountPath": "/data", "name": "d"}],
                }
            ],
            "imagePullSecrets": [{"name": "regcred"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}], "phase": "Pending"},
    }
    patch = {
        "metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]},
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                    "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                }
            ],
            "imagePullSecrets": [{"name": "other"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"},
    }
    patched = apply_strategic_merge_patch(pod, patch, "Pod")
    container = patched["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 8000, "name": "http", "protocol": "TCP"}]
    assert container["volumeMounts"] == [{"mountPath": "/data", "name": "d", "readOnly": True}]
    assert patched["metadata"]["ownerReferences"] == [
        {"uid": "u1", "name": "rs-1", "controller": True}
    ]
    assert [s["name"] for s in patched["spec"]["imagePullSecrets"]] == ["other", "regcred"]
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_node_status_conditions_and_addresses_merge_by_type() -> None:
    patch = {
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
        }
    }
    patched = apply_strategic_merge_patch(_node(), patch, "Node")
    assert patched["status"]["conditions"] == [
        {"type": "MemoryPressure", "status": "False"},
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
    ]
    assert patched["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.9"},
        {"type": "Hostname", "address": "gpu-node-1"},
    ]


def test_service_ports_merge_by_port() -> None:
    service = {
        "kind": "Service",
        "spec": {
            "selector": {"app": "llm-serve"},
            "ports": [{"port": 80, "targetPort": 8000}, {"port": 9090, "targetPort": 9090}],
        },
    }
    patch = {"spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"track": "canary"}}}
    patched = apply_strategic_merge_patch(service, patch, "Service")
    assert patched["spec"]["ports"] == [
        {"port": 80, "targetPort": 8000, "name": "http"},
        {"port": 9090, "targetPort": 9090},
    ]
    assert patched["spec"]["selector"] == {"app": "llm-serve", "track": "canary"}


def test_directives_inside_new_fields_do_not_leak_into_the_object() -> None:
    doc = _deployment()
    del _pod_spec(doc)["containers"][1]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [
                        {
                            "name": "fetch",
                            "$setElementOrder/env": [{"name": "X"}],
                            "env": [{"name": "X", "value": "1"}],
                        }
                    ]
                }
            }
        }
    }
    patched = apply_strategic_merge_patch(doc, patch, "Deployment")
    assert _pod_spec(patched)["initContainers"] == [
        {"name": "fetch", "env": [{"name": "X", "value": "1"}]}
    ]


def test_custom_resources_are_refused_with_unsupported_patch_error() -> None:
    with pytest.raises(UnsupportedPatchError) as info:
        apply_strategic_merge_patch({"spec": {}}, {"spec": {"x": 1}}, "HTTPRoute")
    assert isinstance(info.value, PatchError)
    assert "unknown format" in str(info.value)


def test_every_kind_the_brief_names_accepts_strategic_merge() -> None:
    for kind in ("Deployment", "ReplicaSet", "Pod", "Node", "Service", "Namespace"):
        assert kind in STRATEGIC_MERGE_KINDS
    for kind in ("ConfigMap", "Secret", "Event", "Scale", "HorizontalPodAutoscaler"):
        patched = apply_strategic_merge_patch(
            {"kind": kind, "metadata": {"name": "x"}}, {"metadata": {"labels": {"a": "b"}}}, kind
        )
        assert patched["metadata"] == {"name": "x", "labels": {"a": "b"}}


def test_strategic_merge_patch_must_be_an_object() -> None:
    with pytest.raises(PatchError):
        apply_strategic_merge_patch(_deployment(), [{"op": "add"}], "Deployment")


def test_strategic_merge_never_mutates_document_or_patch() -> None:
    doc = _deployment()
    patch = {
        "metadata": {"labels": {"$patch": "replace", "x": "y"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "vllm"}, {"name": "metrics"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                            "env": [{"$patch": "delete", "name": "B"}],
                            "name": "vllm",
                        }
                    ],
                }
            }
        },
    }
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    patched = apply_strategic_merge_patch(doc, patch, "Deployment")
    _pod_spec(patched)["containers"][1]["image"] = "changed"
    assert doc == before_doc
    assert patch == before_patch
