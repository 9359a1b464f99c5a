"""Azure Kubernetes Service target: Triton Deployments on an accelerator node pool behind a LoadBalancer.

A spec becomes, on the named cluster (made when ``create_cluster`` is true):

* model ``NAME-HASH8``: a local repository uploaded once to Blob storage (container ``models``, prefix = its
  content sha256) and read by Triton as ``as://ACCOUNT/models/PREFIX``; a Secret of that name holds the
  storage key (or an ``as://`` repository is used as given, with the ``storage_secret`` Secret);
* endpoint config ``NAME-HASH8``: a ConfigMap recording one Deployment per variant and the Service;
* endpoint ``NAME``: a separate User node pool (VM size, count or autoscaler bounds, taint
  ``sku=gpu:NoSchedule`` / ``sku=fpga:NoSchedule``), the objects applied with server-side apply (field manager
  ``endpointkit``), ready when every Deployment is available and the Service has a LoadBalancer address;
  the URL is ``http://ADDRESS:8000``.

Weighted traffic: one Service selects every variant's pods and kube-proxy spreads connections over ready
pods, so a variant's share is its share of replicas. Weights must therefore be proportional to
``instance_count`` (plan refuses others with the reason); independent weights need SageMaker.

Known limits: the storage account is looked up in the target's resource group (its key via ARM listKeys); a
cluster with Entra ID (AAD) integration hands out a kubeconfig whose ``exec`` plugin is ``kubelogin``, which
must then be on PATH; the NVIDIA device plugin is installed only on GPU pools endpointkit made (an FPGA pool
needs its vendor's device plugin, whose resource name ``fpga.resource_name`` gives).

azure-mgmt-containerservice, azure-identity, azure-storage-blob and kubernetes are imported lazily
(``endpointkit._lazy.require``): a missing one raises MissingDependencyError naming
``pip install 'endpointkit[aks]'``.
"""

from __future__ import annotations

from endpointkit.adapters.aks._adapter import AksAdapter
from endpointkit.adapters.aks._errors import PollPolicy, RetryPolicy
from endpointkit.adapters.aks._render import API_KEY_HEADER, DEFAULT_TRITON_TAG

__all__ = ["API_KEY_HEADER", "DEFAULT_TRITON_TAG", "AksAdapter", "PollPolicy", "RetryPolicy"]
