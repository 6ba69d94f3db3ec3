"""What to do after an error, said two ways: as a Python call for the client's callers and as a
command for the `model-registry` command's. The facts (the names, versions and aliases that
exist) are gathered once by the client and kept on the error; each voice words them here.
"""

from difflib import get_close_matches
from typing import Any, Literal

Voice = Literal["python", "cli"]
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")
# Route segments a base URL never ends in: a URL that does was copied from a request.
ROUTE_SEGMENTS = ("models", "predict", "classify", "invocations", "runtime", "ping")


def near_names(name: str, names: list[str]) -> list[str]:
    """The existing names closest to a mistyped one, closest first."""
    return get_close_matches(name, names, n=3, cutoff=0.6)


def next_step(code: str, facts: dict[str, Any], voice: Voice) -> str:
    """One or two sentences naming what to run next; empty when the message says it all."""
    words = _PYTHON if voice == "python" else _CLI
    wording = words.get(code)
    return wording(facts) if wording is not None else ""


def _listed(values: list[Any]) -> str:
    return ", ".join(map(str, values))


def _quoted(values: list[str]) -> str:
    return ", ".join(repr(value) for value in values)


# The command's voice ---------------------------------------------------------------------


def _cli_unreachable(facts: dict[str, Any]) -> str:
    if facts.get("local"):
        return (
            "start the local server with `make run` in the clone (it serves "
            "http://127.0.0.1:3000), or point at another with --url URL or MODEL_REGISTRY_URL"
        )
    return (
        "check the address: --url (or MODEL_REGISTRY_URL) takes your stack's ApiUrl output, "
        "for example https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    )


def _cli_wrong_url(facts: dict[str, Any]) -> str:
    return f"--url takes the API's base URL, without /{facts['segment']}: --url {facts['base']}"


def _cli_bad_url(facts: dict[str, Any]) -> str:
    return (
        "--url (or MODEL_REGISTRY_URL) takes the API's base URL: http://127.0.0.1:3000 for "
        "`make run`, or your stack's ApiUrl output"
    )


def _cli_not_a_registry(facts: dict[str, Any]) -> str:
    return (
        "check --url: it takes the registry API's base URL (`make run` serves "
        "http://127.0.0.1:3000; deployed, the stack's ApiUrl output)"
    )


def _cli_model_not_found(facts: dict[str, Any]) -> str:
    names, near = facts.get("names"), facts.get("near")
    if names is None:
        return "`model-registry list` shows every model"
    if not names:
        name = facts.get("name", "NAME")
        return f"no model is registered yet: `model-registry register FILE --name {name}`"
    guess = f"did you mean {_quoted(near)}? " if near else ""
    return f"{guess}models here: {_quoted(names[:10])} (`model-registry list` shows them all)"


def _cli_version_not_found(facts: dict[str, Any]) -> str:
    name, versions = facts.get("name", "NAME"), facts.get("versions")
    if not versions:
        return f"`model-registry show {name}` lists its versions"
    return f"{name} has versions {_listed(versions)} (`model-registry show {name}`)"


def _cli_version_archived(facts: dict[str, Any]) -> str:
    name, version = facts.get("name", "NAME"), facts.get("version", "VERSION")
    return f"`model-registry restore {name} {version}` serves it again" + (
        f", or use an active version: {_listed(facts['active'])}" if facts.get("active") else ""
    )


def _cli_alias_not_found(facts: dict[str, Any]) -> str:
    name, aliases = facts.get("name", "NAME"), facts.get("aliases") or {}
    existing = ", ".join(f"{alias} (version {version})" for alias, version in aliases.items())
    return (
        f"the aliases of {name}: {existing}; " if existing else f"{name} has no alias yet; "
    ) + (f"set one with `model-registry alias set {name} ALIAS VERSION`")


def _cli_forbidden(facts: dict[str, Any]) -> str:
    if facts.get("api_key_route"):
        return (
            "the predict routes take the stack's API key: pass --api-key KEY or set "
            "MODEL_REGISTRY_API_KEY (README, 'Deploy': aws apigateway get-api-key)"
        )
    return (
        "management routes take AWS credentials with rights on this model: check the profile "
        "you sign with (AWS_PROFILE) and the registrar policy in the README"
    )


def _cli_needs_conversion(facts: dict[str, Any]) -> str:
    return f"`model-registry convert {facts.get('name', 'NAME')}` gives it a copy predict loads"


def _pointing(facts: dict[str, Any]) -> list[str]:
    """The aliases that point at the version in question (all of the model's when deleting)."""
    aliases = facts.get("aliases") or {}
    version = facts.get("version")
    return [alias for alias, at in aliases.items() if version is None or at == version]


def _cli_in_use(facts: dict[str, Any]) -> str:
    name, pointing = facts.get("name", "NAME"), _pointing(facts)
    alias = pointing[0] if pointing else "ALIAS"
    step = (
        f"aliases point at it ({', '.join(pointing) or 'see `model-registry show ' + name + '`'}): "
        f"move them (`model-registry alias set {name} {alias} VERSION`) or remove them "
        f"(`model-registry alias rm {name} {alias}`) first"
    )
    return step + (", or delete it anyway with --force" if facts.get("deleting") else "")


def _cli_no_credentials(facts: dict[str, Any]) -> str:
    return "sign in to AWS first: `aws configure`, AWS_PROFILE=..., or `aws sso login`"


_CLI = {
    "unreachable": _cli_unreachable,
    "wrong_url": _cli_wrong_url,
    "not_a_registry": _cli_not_a_registry,
    "bad_url": _cli_bad_url,
    "model_not_found": _cli_model_not_found,
    "version_not_found": _cli_version_not_found,
    "version_archived": _cli_version_archived,
    "alias_not_found": _cli_alias_not_found,
    "forbidden": _cli_forbidden,
    "version_needs_conversion": _cli_needs_conversion,
    "version_in_use": _cli_in_use,
    "no_credentials": _cli_no_credentials,
}


# The Python client's voice -----------------------------------------------------------------


def _python_unreachable(facts: dict[str, Any]) -> str:
    if facts.get("local"):
        return (
            "start the local server with `make run` in the clone, or pass your stack's ApiUrl: "
            "RegistryClient('https://abc123.execute-api.eu-west-1.amazonaws.com/prod')"
        )
    return "check the address: RegistryClient takes your stack's ApiUrl output"


def _python_wrong_url(facts: dict[str, Any]) -> str:
    return (
        f"RegistryClient takes the API's base URL, without /{facts['segment']}: "
        f"RegistryClient({facts['base']!r})"
    )


def _python_bad_url(facts: dict[str, Any]) -> str:
    return (
        "RegistryClient takes the API's base URL: RegistryClient('http://127.0.0.1:3000') for "
        "`make run`, or your stack's ApiUrl output"
    )


def _python_not_a_registry(facts: dict[str, Any]) -> str:
    return (
        "check the URL: RegistryClient takes the registry API's base URL (`make run` serves "
        "http://127.0.0.1:3000; deployed, the stack's ApiUrl output)"
    )


def _python_model_not_found(facts: dict[str, Any]) -> str:
    names, near = facts.get("names"), facts.get("near")
    if names is None:
        return "client.list_models() shows every model"
    if not names:
        return f"no model is registered yet: client.register(model, {facts.get('name', 'NAME')!r})"
    guess = f"did you mean {_quoted(near)}? " if near else ""
    return f"{guess}models here: {_quoted(names[:10])} (client.list_models() shows them all)"


def _python_version_not_found(facts: dict[str, Any]) -> str:
    name, versions = facts.get("name", "NAME"), facts.get("versions")
    if not versions:
        return f"client.show({name!r}) lists its versions"
    return f"{name} has versions {_listed(versions)} (client.show({name!r}))"


def _python_version_archived(facts: dict[str, Any]) -> str:
    name, version = facts.get("name", "NAME"), facts.get("version", "VERSION")
    return f"client.restore({name!r}, {version}) serves it again" + (
        f", or use an active version: {_listed(facts['active'])}" if facts.get("active") else ""
    )


def _python_alias_not_found(facts: dict[str, Any]) -> str:
    name, aliases = facts.get("name", "NAME"), facts.get("aliases") or {}
    existing = ", ".join(f"{alias} (version {version})" for alias, version in aliases.items())
    return (
        f"the aliases of {name}: {existing}; " if existing else f"{name} has no alias yet; "
    ) + (f"set one with client.set_alias({name!r}, alias, version)")


def _python_forbidden(facts: dict[str, Any]) -> str:
    if facts.get("api_key_route"):
        return "the predict routes take the stack's API key: RegistryClient(url, api_key=KEY)"
    return (
        "management routes take AWS credentials with rights on this model: check the profile "
        "you sign with (AWS_PROFILE) and the registrar policy in the README"
    )


def _python_needs_conversion(facts: dict[str, Any]) -> str:
    return f"client.convert({facts.get('name', 'NAME')!r}) gives it a copy predict loads"


def _python_in_use(facts: dict[str, Any]) -> str:
    name, pointing = facts.get("name", "NAME"), _pointing(facts)
    alias = repr(pointing[0]) if pointing else "alias"
    step = (
        f"aliases point at it ({', '.join(pointing) or 'see client.show(' + repr(name) + ')'}): "
        f"move them (client.set_alias({name!r}, {alias}, version)) or remove them "
        f"(client.delete_alias({name!r}, {alias})) first"
    )
    return step + (", or delete it anyway with force=True" if facts.get("deleting") else "")


_PYTHON = {
    "unreachable": _python_unreachable,
    "wrong_url": _python_wrong_url,
    "not_a_registry": _python_not_a_registry,
    "bad_url": _python_bad_url,
    "model_not_found": _python_model_not_found,
    "version_not_found": _python_version_not_found,
    "version_archived": _python_version_archived,
    "alias_not_found": _python_alias_not_found,
    "forbidden": _python_forbidden,
    "version_needs_conversion": _python_needs_conversion,
    "version_in_use": _python_in_use,
    "no_credentials": _cli_no_credentials,
}
