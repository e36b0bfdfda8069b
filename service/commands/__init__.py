"""The CLI's commands, by where they act: local pipeline, remote service, server admin."""
