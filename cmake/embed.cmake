# Turns a file into a C byte array: cmake -DIN=file -DOUT=file.c -DNAME=sym -P embed.cmake
file(READ ${IN} HEX HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," ARR "${HEX}")
file(WRITE ${OUT} "/* generated from ${IN} */\nconst unsigned char ${NAME}[] = {${ARR} 0x00};\nconst unsigned long ${NAME}_len = sizeof(${NAME}) - 1;\n")
