"""Spanish for the messages technicians read: the CLI's output and the config's problems.

gettext's model without its binary catalogues: the English text is the message id, and
``ES`` maps it to Spanish; an id missing from ``ES`` stays English. Spanish is used when the
first of LANGUAGE, LC_ALL, LC_MESSAGES, LANG that is set starts with ``es`` (gettext's order),
so ``LANG=es_MX.UTF-8 vatio check -c vatio.yaml`` answers in Spanish. Logs stay English: they
are searched and quoted in bug reports.

To translate another message, wrap it as ``tr("text with {name}", name=value)`` and add the
English text and its Spanish to ``ES``; ``tests/unit/test_i18n.py`` checks that both sides
name the same placeholders.

It lives in drivers/ because the YAML loader that both the agent's config and the device
profiles use is here.
"""

from __future__ import annotations

import os

ES: dict[str, str] = {
    # config and profile problems (common/yamlconf.py)
    "unknown key '{key}': {hint}": "clave desconocida '{key}': {hint}",
    "did you mean '{close}'?": "¿quiso decir '{close}'?",
    "{device} is already bus '{first}': put every sensor of one I2C adapter on one bus": (
        "{device} ya es el bus '{first}': ponga todos los sensores de un adaptador I2C en un "
        "solo bus"
    ),
    "address 0x{address} on bus '{bus}' is taken by device '{other}': two sensors cannot share "
    "an address; set another with the sensor's address pin, or put one on another I2C bus": (
        "la dirección 0x{address} del bus '{bus}' ya es del dispositivo '{other}': dos sensores "
        "no pueden compartir dirección; cambie una con el pin de dirección del sensor, o ponga "
        "uno en otro bus I2C"
    ),
    "'{value}' is not an I2C adapter: write /dev/i2c-N (/dev/i2c-1 on a Raspberry Pi's header; "
    "ls /dev/i2c-* lists them once I2C is enabled)": "'{value}' no es un adaptador I2C: escriba "
    "/dev/i2c-N (/dev/i2c-1 en el conector de una Raspberry Pi; ls /dev/i2c-* los lista una vez "
    "activado I2C)",
    "allowed keys: {keys}": "claves permitidas: {keys}",
    "required but missing; add it": "obligatorio y falta; agréguelo",
    "'{given}' is not a valid name: use letters, digits, '-', '_' or '.', no spaces "
    "(names become MQTT topic levels)": "'{given}' no es un nombre válido: use letras, "
    "dígitos, '-', '_' o '.', sin espacios (los nombres forman niveles de tópico MQTT)",
    "'{tag}' is not a known type: use {expected}": "'{tag}' no es un tipo conocido: use {expected}",
    "'{given}' is not allowed: {msg}": "'{given}' no está permitido: {msg}",
    "not valid YAML: {what} (check indentation and quoting)": "YAML no válido: {what} "
    "(revise la sangría y las comillas)",
    "duplicate key '{key}' (first at line {line}); keep only one": "clave duplicada '{key}' "
    "(la primera en la línea {line}); deje solo una",
    "file not found; check the path": "no se encontró el archivo; revise la ruta",
    "cannot read the file: {error}": "no se puede leer el archivo: {error}",
    # config values (agent/config.py, drivers/modbus/)
    "'{value}' is not a duration: write it like 1s, 500ms, 5m, 1h or 7d": "'{value}' no es "
    "una duración: escríbala como 1s, 500ms, 5m, 1h o 7d",
    "'{value}' is not an MQTT URL: write mqtt://HOST:PORT (or mqtts:// for TLS)": "'{value}' "
    "no es una URL MQTT: escriba mqtt://HOST:PUERTO (o mqtts:// con TLS)",
    "environment variable {name} is not set: set it (for the service, in "
    "/etc/vatio/vatio.env) or write ${{{name}:-default}}": "la variable de entorno {name} no "
    "está definida: defínala (para el servicio, en /etc/vatio/vatio.env) o escriba "
    "${{{name}:-valor}}",
    "unknown bus '{bus}': define it under buses (defined: {defined})": "bus desconocido "
    "'{bus}': defínalo bajo buses (definidos: {defined})",
    "driver '{driver}' talks over {types}, but bus '{bus}' is {type}: choose a bus of the "
    "right type": "el driver '{driver}' usa {types}, pero el bus '{bus}' es {type}: elija un "
    "bus del tipo correcto",
    "unit id {unit} is out of range {low}–{high} for RS-485 (Modbus serial line): use the "
    "address set on the device (often 1)": "la unidad {unit} está fuera del rango {low}–{high} "
    "de RS-485 (Modbus serie): use la dirección configurada en el equipo (a menudo 1)",
    "unit id {unit} is out of range {low}–{high}: use the address set on the device (often 1)": (
        "la unidad {unit} está fuera del rango {low}–{high}: use la dirección configurada en "
        "el equipo (a menudo 1)"
    ),
    "unknown profile '{ref}': {hint} (built-in: {builtin})": "perfil desconocido '{ref}': "
    "{hint} (incluidos: {builtin})",
    "or give the path of a profile .yaml file": "o dé la ruta de un archivo de perfil .yaml",
    # the CLI (agent/cli.py)
    "error: 1 problem in {path}:": "error: 1 problema en {path}:",
    "error: {n} problems in {path}:": "error: {n} problemas en {path}:",
    "ok: {path}": "correcto: {path}",
    "site {site}, agent {agent}, state in {state}": "sitio {site}, agente {agent}, estado en "
    "{state}",
    "buses ({n}):": "buses ({n}):",
    "devices ({n} enabled):": "equipos ({n} habilitados):",
    "every {interval} s": "cada {interval} s",
    "outputs: {outputs}": "salidas: {outputs}",
    "remote management: on, {pushes}": "gestión remota: activa, {pushes}",
    "pushed configs may change {sections}": "una configuración enviada puede cambiar {sections}",
    "no pushed configs": "no acepta configuraciones enviadas",
    "none": "ninguna",
    "warning: {text}": "aviso: {text}",
    "error: {text}": "error: {text}",
    "bus '{bus}' has no enabled device": "el bus '{bus}' no tiene equipos habilitados",
    "no output configured: readings will only be logged": "no hay salida configurada: las "
    "lecturas solo irán al registro (log)",
    "bus '{bus}': the schedule needs {load} of the line's time at {baud} baud; polls will be "
    "missed. Lengthen the intervals, raise the baud rate or move devices to another bus": (
        "bus '{bus}': el programa de lecturas necesita {load} del tiempo de la línea a {baud} "
        "baudios; se perderán lecturas. Alargue los intervalos, suba la velocidad o pase "
        "equipos a otro bus"
    ),
    "no enabled device named {names} in {path} (devices: {devices})": "no hay un equipo "
    "habilitado llamado {names} en {path} (equipos: {devices})",
    "--units {units}: write a range such as 1-247 or 5": "--units {units}: escriba un rango "
    "como 1-247 o 5",
    "cannot open {target}: check the port name and that no other program uses it": (
        "no se puede abrir {target}: revise el nombre del puerto y que ningún otro programa lo use"
    ),
    "cannot open {target}: check the address and port, and that the gateway is on the "
    "network": "no se puede abrir {target}: revise la dirección y el puerto, y que la "
    "pasarela esté en la red",
    "state_dir '{path}' is not writable ({reason}): set state_dir in the config to a "
    "directory the agent's user can write (the service uses /var/lib/vatio)": (
        "no se puede escribir en state_dir '{path}' ({reason}): ponga en la configuración un "
        "state_dir donde el usuario del agente pueda escribir (el servicio usa /var/lib/vatio)"
    ),
    "http.listen {host}:{port}: {reason}: another program uses this port; choose another one "
    "(e.g. 127.0.0.1:8090) or remove the http block": (
        "http.listen {host}:{port}: {reason}: otro programa usa este puerto; elija otro "
        "(p. ej. 127.0.0.1:8090) o quite el bloque http"
    ),
    "no history yet: {path} does not exist (the agent writes it while it runs)": "aún no hay "
    "historial: {path} no existe (el agente lo escribe mientras funciona)",
    "no closed {kind}s yet": "aún no hay {kind}s cerrados",
    "{path} can be read by every user of this machine and holds a password or token; make it "
    "private: chmod 640 {path}": (
        "cualquier usuario de esta máquina puede leer {path}, y contiene una contraseña o "
        "token; hágalo privado: chmod 640 {path}"
    ),
    # vatio init (agent/starter.py)
    "wrote the '{example}' example to {path}": "se escribió el ejemplo '{example}' en {path}",
    "edit it, then: {command} -c {path}": "edítelo y después: {command} -c {path}",
    "{path} exists already; it was not changed. Write elsewhere (vatio init OTHER.yaml) or "
    "overwrite it with --force": "{path} ya existe; no se modificó. Escriba en otro archivo "
    "(vatio init OTRO.yaml) o sobrescríbalo con --force",
    "{path}: the folder {folder} does not exist; create it first": "{path}: la carpeta "
    "{folder} no existe; créela primero",
    "{path} is a folder; name a file": "{path} es una carpeta; indique un archivo",
    # the site balance and the CFE bill (agent/metrics/site.py, bill.py; vatio check/history)
    "a site has one grid meter (the CFE supply point); '{first}' is already role: grid."
    " Make this one role: load, or split the site": "un sitio tiene un solo medidor de red (el"
    " punto de suministro de CFE); '{first}' ya es role: grid. Ponga role: load en éste, o"
    " divida el sitio",
    "a grid meter must count imported energy (energy_import_kwh); its profile has"
    " no such register: choose a profile that maps it": "un medidor de red debe contar la"
    " energía importada (energy_import_kwh); su perfil no tiene ese registro: elija un perfil"
    " que lo incluya",
    "a generation device must publish its production counter {counter}, and its "
    "profile does not (it has: {has}); set metrics.generation_counter to one it has,"
    " or use a profile that maps it": "un equipo de generación debe publicar su contador de"
    " producción {counter} y su perfil no lo tiene (tiene: {has}); indique en"
    " metrics.generation_counter uno que tenga, o use un perfil que lo incluya",
    "no energy counter": "ningún contador de energía",
    "the bill needs the utility meter: give one device role: grid": "el recibo necesita el"
    " medidor de CFE: ponga role: grid en un equipo",
    "the price table has errors:": "la tabla de precios tiene errores:",
    "division '{division}' has no prices in {file}; it has: {divisions}": "la división"
    " '{division}' no tiene precios en {file}; tiene: {divisions}",
    "site balance: {roles}": "balance del sitio: {roles}",
    "grid meter '{device}' has no export counter (energy_export_kwh): {consequence}": "el"
    " medidor de red '{device}' no tiene contador de exportación (energy_export_kwh):"
    " {consequence}",
    "exports, consumption and self-consumption will be null (flagged "
    "no_export_register); use a profile that maps the export register": "la exportación, el"
    " consumo y el autoconsumo quedarán nulos (marcados no_export_register); use un perfil con"
    " el registro de exportación",
    "if the site ever exports, the balance will not show it": "si el sitio llega a exportar,"
    " el balance no lo mostrará",
    "bill: {tariff}, division {division}, prices {file}, net metering {scheme}": "recibo:"
    " {tariff}, división {division}, precios {file}, medición neta {scheme}",
    "no {tariff} prices for {month} in division {division} ({file}): the bill "
    "will show energy and demand without amounts; add the month's row": "no hay precios"
    " {tariff} de {month} para la división {division} ({file}): el recibo mostrará energía y"
    " demanda sin importes; agregue la fila del mes",
    "the {month} prices for {division} are examples, not CFE's: copy the "
    "month's figures from CFE's GDMTH page into bill.prices": "los precios de {month} para"
    " {division} son de ejemplo, no de CFE: copie las cifras del mes de la página GDMTH de CFE"
    " en bill.prices",
    "  no prices for this month in the price table: quantities only": "  no hay precios para"
    " este mes en la tabla: sólo cantidades",
    "  EXAMPLE prices (not sourced from CFE): amounts are illustrations": "  precios de"
    " EJEMPLO (no tomados de CFE): los importes son ilustrativos",
    "Total": "Total",
    "Projected at the period's end": "Proyección al cierre del periodo",
    "closed": "cerrado",
    "running (as last saved)": "en curso (según lo último guardado)",
    "closed period {key}: {error}": "periodo cerrado {key}: {error}",
    "no bill yet: configure bill: and a device with role: grid": "aún no hay recibo: configure"
    " bill: y un equipo con role: grid",
    "{path}: cannot write it: {reason}": "{path}: no se puede escribir: {reason}",
}


def spanish() -> bool:
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return value.lower().startswith("es")
    return False


def tr(message: str, /, **values: object) -> str:
    """``message`` in the user's language, its ``{name}`` placeholders filled from ``values``."""
    if spanish():
        message = ES.get(message, message)
    return message.format(**values) if values else message
