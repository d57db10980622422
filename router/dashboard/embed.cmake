# Turns the status page's files into one C source of byte arrays, at build time:
#   cmake -DDIR=<folder> -DFILES=index.html,app.js,style.css -DOUT=<file.c> -P embed.cmake
# Each file F.EXT becomes `const unsigned char syn_asset_F_EXT[]` and
# `const size_t syn_asset_F_EXT_len` (router/dashboard.c declares them). CMake alone
# does it (file(READ ... HEX)), so the build needs no other tool.
string(REPLACE "," ";" files "${FILES}")
set(text "/* Generated from router/dashboard/ by embed.cmake at build time: do not edit. */\n")
string(APPEND text "#include <stddef.h>\n\n")
foreach(f ${files})
  string(MAKE_C_IDENTIFIER "syn_asset_${f}" name)
  file(READ "${DIR}/${f}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR bytes "${hex_len} / 2")
  # Two hex digits per byte; 16 bytes a line.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n  " hex "${hex}")
  string(APPEND text "const unsigned char ${name}[] = {\n  ${hex}0x00};\n")
  string(APPEND text "const size_t ${name}_len = ${bytes};\n\n")
endforeach()
# Rewritten only when it changed, so an unchanged page recompiles nothing.
set(tmp "${OUT}.tmp")
file(WRITE "${tmp}" "${text}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${tmp}" "${OUT}")
file(REMOVE "${tmp}")
