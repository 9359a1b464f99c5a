"""Azure Kubernetes Service target: Triton Deployments on an accelerator node pool behind a Gateway (Gateway API).

A spec becomes, on the named cluster (made when ``create_cluster`` is true):

* model ``NAME-HASH8``: a local repository uploaded once to Blob storage (container ``models``, prefix = its
  content sha256) and read by Triton as ``as://ACCOUNT/models/PREFIX``; a Secret of that name holds the
  storage key (or an ``as://`` repository is used as given, with the ``storage_secret`` Secret);
* endpoint config ``NAME-HASH8``: a ConfigMap recording the rendered objects: per variant a Deployment and a
  ClusterIP Service named after the pod template (``NAME-VARIANT-REV8``: a new template is a new version beside
  the old one), the anchor ClusterIP Service ``NAME`` (the endpoint's record), the Gateway ``NAME`` (unless
  ``gateway`` names an existing one) and the HTTPRoute and GRPCRoute ``NAME`` that weight the variants;
* endpoint ``NAME``: a separate User node pool (VM size, count or autoscaler bounds, taint
  ``sku=gpu:NoSchedule`` / ``sku=fpga:NoSchedule``), the objects applied with server-side apply (field manager
  ``endpointkit``), the listener's TLS Secrets (``tls: auto``: ``NAME-ca`` keeps a private CA, ``NAME-tls`` the
  server certificate it signs, renewed within 30 days of expiry); ready when every Deployment is available, the
  Gateway is Programmed and both routes are Accepted with their backends resolved. The URL is ``https://HOST``:
  ``host``, else the Azure DNS name of the Gateway's public IP (``LABEL.REGION.cloudapp.azure.com``).

Weighted traffic: the routes split requests between the variants' Services by weight (Gateway API
``backendRefs.weight``), independent of ``instance_count``. An update starts the new versions beside the old,
runs the ``verify`` hook through a preview rule (header ``endpointkit-version``), moves the weights in
``rollout`` steps with alarms from Triton's counters of the new pods, and rolls back to the previous routes on
any failure or interrupt (``_steps``).

Known limits: the storage account is looked up in the target's resource group (its key via ARM listKeys); a
cluster with Entra ID (AAD) integration hands out a kubeconfig whose ``exec`` plugin is ``kubelogin``, which
must then be on PATH; the NVIDIA device plugin is installed only on GPU pools endpointkit made (an FPGA pool
needs its vendor's device plugin, whose resource name ``fpga.resource_name`` gives); blue/green needs room in
the pool for both versions while traffic moves.

azure-mgmt-containerservice, azure-identity, azure-storage-blob and kubernetes are imported lazily
(``endpointkit._lazy.require``): a missing one raises MissingDependencyError naming
``pip install 'endpointkit[aks]'``.
"""

from __future__ import annotations

from endpointkit.adapters.aks._adapter import AksAdapter
from endpointkit.adapters.aks._errors import PollPolicy, RetryPolicy
from endpointkit.adapters.aks._render import API_KEY_HEADER, DEFAULT_TRITON_TAG

__all__ = ["API_KEY_HEADER", "DEFAULT_TRITON_TAG", "AksAdapter", "PollPolicy", "RetryPolicy"]
