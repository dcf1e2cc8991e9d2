from django.contrib.staticfiles.apps import StaticFilesConfig


class HomevisitStaticFilesConfig(StaticFilesConfig):
    """Collect only the library builds the templates use, not every variant npm ships."""

    ignore_patterns = [
        *StaticFilesConfig.ignore_patterns,
        "*.rtl.*",
        "bootstrap-grid*",
        "bootstrap-reboot*",
        "bootstrap-utilities*",
        "bootstrap.css*",
        "bootstrap.js*",
        "bootstrap.min.js*",
        "bootstrap.esm*",
        "bootstrap.bundle.js*",
        "echarts.js*",
        "echarts.esm*",
        "echarts.common*",
        "echarts.simple*",
        "extension",
        "package.json",
    ]
