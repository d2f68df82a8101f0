# The dispatcher image: CLI, workers and migrations (llm-dispatch ...).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md cli.py alembic.ini ./
COPY dispatcher ./dispatcher
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --no-cache-dir '.[postgres]'
# Keys come from the environment at call time (api_key: os.environ/NAME); never bake them in.
ENTRYPOINT ["llm-dispatch"]
CMD ["--help"]
