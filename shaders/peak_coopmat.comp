#version 450
// placeholder
layout(local_size_x = 1) in;
void main() {}
