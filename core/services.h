/*
 * services: the host table (walnotify_host) each plugin instance receives.
 */
#ifndef WN_SERVICES_H
#define WN_SERVICES_H

#include "loader.h"

/* Fills plugin->host for the instance config describes, whose settings are built already. */
void wn_services_fill(wn_plugin *plugin, const wn_plugin_config *config);

#endif
