from provaudit.cli import cli

cli(prog_name="provaudit")
