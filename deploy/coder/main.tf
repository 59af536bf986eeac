# Kelpie as a Coder template module: a coder_script starts Kelpie in the workspace, and a
# coder_app opens it through Coder's authenticated app proxy, with Kelpie's /healthz as its
# health check. Use it from a template:
#
#   module "kelpie" {
#     source   = "./kelpie"          # this directory
#     agent_id = coder_agent.main.id
#     app      = "startxfce4"
#   }
#
# The workspace image needs Kelpie (its Debian package or the container image's files),
# Xvfb, PulseAudio and the desktop.

terraform {
  required_version = ">= 1.0"
  required_providers {
    coder = {
      source  = "coder/coder"
      version = ">= 2.5"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5"
    }
  }
}

variable "agent_id" {
  type        = string
  description = "The coder_agent Kelpie runs under."
}

variable "agent_name" {
  type        = string
  description = "That agent's name (the part of the app's path after the workspace)."
  default     = "main"
}

variable "port" {
  type        = number
  description = "Loopback port Kelpie listens on inside the workspace."
  default     = 6080
}

variable "app" {
  type        = string
  description = "What runs on the desktop (KELPIE_APP); empty: Kelpie's demo desktop."
  default     = ""
}

variable "size" {
  type        = string
  description = "Size of the display (KELPIE_SIZE)."
  default     = "1920x1080"
}

variable "share" {
  type        = string
  description = "Who may open the desktop: owner, authenticated or public (Coder's app sharing)."
  default     = "owner"
}

variable "order" {
  type        = number
  description = "Position of the app among the workspace's apps."
  default     = null
}

data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

# Kelpie's token: in the app's link (the owner's dashboard) and in a 0600 file in the
# workspace; never on Kelpie's command line.
resource "random_password" "token" {
  length  = 40
  special = false
}

locals {
  # Coder serves path-based apps at /@OWNER/WORKSPACE.AGENT/apps/SLUG/ on its access URL:
  # Kelpie's public URL (its Origin and Host checks, its cookie's Path).
  public_url = "${trimsuffix(data.coder_workspace.me.access_url, "/")}/@${data.coder_workspace_owner.me.name}/${data.coder_workspace.me.name}.${var.agent_name}/apps/kelpie/"
}

resource "coder_script" "kelpie" {
  agent_id     = var.agent_id
  display_name = "Kelpie"
  icon         = "/icon/desktop.svg"
  run_on_start = true
  script = templatefile("${path.module}/run.sh", {
    PORT       = var.port
    TOKEN      = random_password.token.result
    PUBLIC_URL = local.public_url
    APP        = var.app
    SIZE       = var.size
  })
}

resource "coder_app" "kelpie" {
  agent_id     = var.agent_id
  slug         = "kelpie"
  display_name = "Kelpie Desktop"
  icon         = "/icon/desktop.svg"
  # The token once, in the query: Kelpie swaps it for an HttpOnly cookie for this path.
  url       = "http://localhost:${var.port}/?token=${random_password.token.result}"
  subdomain = false
  share     = var.share
  order     = var.order

  # /healthz needs no token: 200 while the display answers and no stream failed.
  healthcheck {
    url       = "http://localhost:${var.port}/healthz"
    interval  = 5
    threshold = 6
  }
}
