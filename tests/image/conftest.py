from tools_fixtures import crane, helm, image, tools  # noqa: F401  (fixtures)
