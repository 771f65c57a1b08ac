# LoRA Manager. CPU torch by default; for CUDA build with
#   --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    LORA_MANAGER_DATA_DIR=/data LORA_MANAGER_LIBRARY_DIRS=/library LORA_MANAGER_ALLOWED_HOSTS=*

RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH
COPY requirements.txt .
RUN pip install --no-cache-dir --extra-index-url ${TORCH_INDEX} -r requirements.txt
COPY . .
RUN LORA_MANAGER_SECRET_KEY=build-only-not-a-secret-0123456789abcdef python manage.py collectstatic --noinput -v 0

RUN useradd --create-home --uid 1000 app && mkdir -p /data /library && chown app /data
USER app
VOLUME ["/data"]
EXPOSE 8000
# The web process; the compose file runs the worker from the same image with `manage.py run_worker`.
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py bootstrap && exec daphne -b 0.0.0.0 -p 8000 lora_manager.asgi:application"]
